// FileAccess: opening the files and directories of a checkpoint with errors that say what is wrong —
// missing, not readable, a file where a directory is expected or the reverse — and never what the
// file holds. Files are opened non-blocking (a path pointing at a FIFO cannot hang the loader) and
// must be regular files; small files (JSON configs, tokenizer files) are read whole up to a limit.
import Foundation

public enum FileAccess {
    /// The largest config-like file read whole (config.json, adapter_config.json, index files, …).
    public static let defaultReadLimit = 64 << 20

    /// Throws unless `path` is a directory this process can list: ``EngineError/missingDirectory(path:)``,
    /// ``EngineError/notADirectory(path:)`` or ``EngineError/notReadable(path:)``.
    public static func requireDirectory(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw errno == EACCES || errno == EPERM
                ? EngineError.notReadable(path: path) : EngineError.missingDirectory(path: path)
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw EngineError.notADirectory(path: path) }
        guard access(path, R_OK | X_OK) == 0 else { throw EngineError.notReadable(path: path) }
    }

    /// Opens `path` read-only (following symlinks) and checks it is a regular file. Returns the open
    /// descriptor (the caller closes it) and the file's size in bytes.
    static func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw openError(path: path, errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw EngineError.notReadable(path: path)
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw EngineError.notAFile(path: path)
        }
        return (fd, Int(st.st_size))
    }

    /// The whole of the regular file `path`, refused with ``EngineError/corruptFile(path:reason:)``
    /// when it is larger than `limit` bytes.
    public static func readFile(_ path: String, limit: Int = defaultReadLimit) throws -> Data {
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        guard size <= limit else {
            throw EngineError.corruptFile(
                path: path, reason: "file is \(size) bytes, more than the \(limit)-byte limit")
        }
        var data = Data(count: size)
        var done = 0
        while done < size {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n >= 0 else { throw EngineError.notReadable(path: path) }
            if n == 0 { break }  // the file shrank while being read
            done += n
        }
        return data.prefix(done)
    }

    /// A kernel pseudo-file (/proc, /sys), whose stat size is 0 or a page whatever it holds: read until
    /// end of file, at most `limit` bytes. nil when it cannot be opened or read.
    public static func readPseudoFile(_ path: String, limit: Int = 1 << 20) -> Data? {
        guard let (fd, _) = try? openRegularFile(path) else { return nil }
        defer { close(fd) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while data.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, min(4096, limit - data.count)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return data
    }

    /// The error for an `open` that failed with `code`.
    static func openError(path: String, errno code: Int32) -> EngineError {
        switch code {
        case EACCES, EPERM: return .notReadable(path: path)
        case EISDIR: return .notAFile(path: path)
        default: return .missingFile(path: path)
        }
    }

    /// True when something (file, directory, dangling or not) is at `path`: the loaders use it to pick
    /// among candidate files, then open the one found with the errors above.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
