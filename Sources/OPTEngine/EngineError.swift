// EngineError: every way a checkpoint, tokenizer or request can be wrong, with a message that names
// the file and tensor involved. The engine throws these; it never traps on input it did not write.
import Foundation

public enum EngineError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// A file that should exist does not.
    case missingFile(path: String)
    /// A model or tokenizer directory that should exist does not.
    case missingDirectory(path: String)
    /// A path that should be a directory is a file (or a device, pipe, …).
    case notADirectory(path: String)
    /// A path that should be a regular file is a directory, a device or a pipe.
    case notAFile(path: String)
    /// A file or directory exists but this process may not read it.
    case notReadable(path: String)
    /// Loading or running would need more memory than the budget allows (see ``MemoryBudget``).
    case overMemoryBudget(what: String, estimate: Int, limit: Int)
    /// A file exists but its bytes are not what its format promises.
    case corruptFile(path: String, reason: String)
    /// config.json is unusable (wrong model_type, missing key, impossible value).
    case invalidConfig(path: String, reason: String)
    /// A tensor the model needs is not in the checkpoint.
    case missingTensor(name: String, file: String)
    /// A tensor has another shape than the config implies.
    case shapeMismatch(name: String, file: String, expected: [Int], found: [Int])
    /// A tensor is stored in a dtype the engine does not read.
    case unsupportedDType(name: String, file: String, dtype: String)
    /// Tokenizer files are missing or malformed.
    case tokenizer(String)
    /// A request the model cannot serve (too long, bad parameter).
    case invalidRequest(String)
    /// A hub id ("facebook/opt-125m") that is not in the local Hugging Face cache; `searched` is the
    /// directory or file looked at, `hint` how to get it.
    case notCached(reference: String, searched: String, hint: String)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "missing file: \(path)"
        case .missingDirectory(let path):
            return "missing directory: \(path)"
        case .notADirectory(let path):
            return "\(path) is a file, expected a directory"
        case .notAFile(let path):
            return "\(path) is a directory or special file, expected a regular file"
        case .notReadable(let path):
            return "\(path) is not readable (permission denied)"
        case .overMemoryBudget(let what, let estimate, let limit):
            return "\(what) needs about \(MemoryBudget.format(estimate)), more than the memory limit of "
                + "\(MemoryBudget.format(limit)) (set MUWA_MEMORY_LIMIT or --memory-limit to change it)"
        case .corruptFile(let path, let reason):
            return "corrupt file \(path): \(reason)"
        case .invalidConfig(let path, let reason):
            return "invalid config \(path): \(reason)"
        case .missingTensor(let name, let file):
            return "missing tensor '\(name)' in \(file)"
        case .shapeMismatch(let name, let file, let expected, let found):
            return "tensor '\(name)' in \(file) has shape \(found), expected \(expected)"
        case .unsupportedDType(let name, let file, let dtype):
            return "tensor '\(name)' in \(file) has unsupported dtype \(dtype)"
        case .tokenizer(let message):
            return "tokenizer: \(message)"
        case .invalidRequest(let message):
            return "invalid request: \(message)"
        case .notCached(let reference, let searched, let hint):
            return "\(reference) is not in the Hugging Face cache (looked for \(searched)): \(hint)"
        }
    }

    public var errorDescription: String? { description }
}
