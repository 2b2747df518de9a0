// WorkDirectoryConfinement: files the daemon reads back from a job's work directory (<state>/jobs/<id>) must
// really be there. A path recorded in the job's row (an evaluate checkpoint's samples_file) or an entry of
// the work directory that is a symlink could otherwise point at any file the daemon can read; resolved with
// realpath(3) (symlinks, "." and ".." followed), it must lie strictly inside the resolved work directory.
import Foundation

enum WorkDirectoryConfinement {
    /// True when `path`, with every symlink resolved, exists strictly inside `directory` (also resolved).
    static func isInside(_ path: String, directory: String) -> Bool {
        guard let resolvedDirectory = realPath(directory), let resolvedPath = realPath(path) else { return false }
        let prefix = resolvedDirectory.hasSuffix("/") ? resolvedDirectory : resolvedDirectory + "/"
        return resolvedPath.hasPrefix(prefix) && resolvedPath.count > prefix.count
    }

    /// realpath(3): the absolute path with symlinks, "." and ".." resolved; nil when it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
