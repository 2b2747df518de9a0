// ScratchDirectory: where targets whose parsers read only files write an input's files. One directory
// per process, in memory (/dev/shm) when the machine has it; emptied before every input so no file of
// an earlier input is seen. `MUWA_FUZZ_SCRATCH` overrides the parent directory (scripts/fuzz.sh points
// it at a directory it removes afterwards).
import Foundation

enum ScratchDirectory {
    /// <parent>/muwa-fuzz-<pid>, created on first use.
    static let path: String = {
        let environment = ProcessInfo.processInfo.environment
        var parent = environment["MUWA_FUZZ_SCRATCH"] ?? ""
        if parent.isEmpty {
            var isDirectory: ObjCBool = false
            let hasShm =
                FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory)
                && isDirectory.boolValue && access("/dev/shm", W_OK) == 0
            parent = hasShm ? "/dev/shm" : NSTemporaryDirectory()
        }
        let path = (parent as NSString).appendingPathComponent("muwa-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: ScratchDirectory.path) }
        return path
    }()

    /// Empties the directory, writes `files` (name → bytes; nil entries are skipped) into it and
    /// returns its path.
    static func reset(_ files: [(String, [UInt8]?)]) -> String {
        let fm = FileManager.default
        let dir = path
        if let names = try? fm.contentsOfDirectory(atPath: dir) {
            for name in names { try? fm.removeItem(atPath: (dir as NSString).appendingPathComponent(name)) }
        }
        for (name, bytes) in files {
            guard let bytes else { continue }
            let file = (dir as NSString).appendingPathComponent(name)
            let written = fm.createFile(atPath: file, contents: Data(bytes))
            precondition(written, "fuzz scratch directory \(dir) is not writable")
        }
        return dir
    }

    /// The path of `name` inside the directory.
    static func file(_ name: String) -> String {
        (path as NSString).appendingPathComponent(name)
    }
}
