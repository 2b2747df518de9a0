// AccessRoots: the directories a payload may point into. Anyone who can enqueue a job chooses the paths
// in its payload, and the daemon reads them with its own rights; without limits a job could read
// /proc/self/environ as "wikitext" or any .txt as PIQA labels. So the daemon allows models and adapters
// only under the model roots (MUWA_MODEL_ROOTS) and datasets only under the data roots (MUWA_DATA_ROOTS),
// both by default the state directory and /srv/muwa.
//
// A path is checked after resolving it completely (realpath: every symlink followed, "." and ".." gone),
// and a root matches whole path components: /srv/muwa does not admit /srv/muwa-other. The resolved path is
// what the executor then reads, so a symlink inside a root that points outside it is refused too. Roots
// are themselves resolved when the daemon starts. `muwad run` (a user's own command, with that user's
// rights) is unrestricted unless roots are set.
import Evaluation
import Foundation
import JobQueue

/// Allowed directories for the files a payload names.
public struct AccessRoots: Sendable, Equatable {
    /// Which kind of file a path is for.
    public enum Use: String, Sendable {
        case model, data

        var setting: String { self == .model ? "MUWA_MODEL_ROOTS" : "MUWA_DATA_ROOTS" }
    }

    /// nil: any path (muwad run without roots set).
    public let models: [String]?
    public let data: [String]?

    /// No limits.
    public static let unrestricted = AccessRoots(models: nil, data: nil)

    /// The daemon's default for both: the state directory and /srv/muwa.
    public static func defaultRoots(stateDirectory: String) -> [String] {
        [stateDirectory, "/srv/muwa"]
    }

    /// Roots given as written; each is resolved now (a root that does not exist yet is kept as written,
    /// standardized, so a state directory created later still counts).
    public init(models: [String]?, data: [String]?) {
        self.models = models.map { $0.map(Self.resolvedRoot) }
        self.data = data.map { $0.map(Self.resolvedRoot) }
    }

    /// The roots for `use`, or nil when unrestricted.
    public func roots(for use: Use) -> [String]? {
        use == .model ? models : data
    }

    /// The real path of `path` when it lies under a root for `use`; otherwise a permanent failure naming
    /// the field and the roots (never the file's contents).
    public func resolve(_ path: String, use: Use, field: String, kind: String) throws -> String {
        let failure = { (message: String) in JobFailure.permanent("invalid \(kind) payload: \(message)") }
        guard let real = Self.realPath(path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw failure(
                "\(field): \(path) \(exists ? "cannot be reached (a directory on the way is not searchable)" : "does not exist")"
            )
        }
        guard let roots = roots(for: use) else { return real }
        if roots.contains(where: { Self.contains(root: $0, path: real) }) { return real }
        let shown = real == path ? path : "\(path) (which is \(real))"
        throw failure(
            "\(field): \(shown) is outside the directories this daemon may read \(use.rawValue) files from "
                + "(\(use.setting): \(roots.joined(separator: ", ")))")
    }

    /// Whether `path` (already real) is `root` or below it, component-wise.
    static func contains(root: String, path: String) -> Bool {
        if root == "/" { return path.hasPrefix("/") }
        return path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    /// realpath(3): nil when the path (or a component) does not exist or cannot be searched.
    static func realPath(_ path: String) -> String? {
        guard !path.isEmpty, let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func resolvedRoot(_ root: String) -> String {
        realPath(root) ?? URL(fileURLWithPath: root).standardizedFileURL.path
    }

    /// Parses a roots setting: paths separated by ":" or ","; empty entries ignored; "*" alone = unrestricted.
    public static func parse(_ setting: String) -> [String]? {
        let trimmed = setting.trimmingCharacters(in: .whitespaces)
        if trimmed == "*" { return nil }
        return trimmed.split(whereSeparator: { $0 == ":" || $0 == "," })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
