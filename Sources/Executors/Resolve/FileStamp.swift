// FileStamp: a file's path, size and modification time, the part of a checkpoint's identity that says
// "the same dataset file as when the checkpoint was made".
import Foundation
import Storage

enum FileStamp {
    /// {"path", "size", "modified"}; -1 where the file cannot be read.
    static func of(_ path: String) -> JSONValue {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes?[.size] as? NSNumber)?.doubleValue ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        return ["path": .string(path), "size": .number(size), "modified": .number(modified)]
    }
}
