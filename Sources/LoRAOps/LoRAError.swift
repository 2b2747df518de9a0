// LoRAError: every way an adapter directory, a training configuration or a training checkpoint can be
// wrong, with a message naming the file, key or option involved. LoRAOps throws these (and passes the
// engine's EngineError through); it never traps on input it did not write.
import Foundation

public enum LoRAError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// A file that should exist does not, or cannot be read or written.
    case missingFile(path: String)
    /// adapter_config.json (or a trainer state file) is malformed.
    case invalidConfig(path: String, reason: String)
    /// A peft option or value the engine does not implement, named as peft spells it.
    case unsupported(path: String, option: String, reason: String)
    /// The adapter's tensors do not fit the base model or the config.
    case tensorMismatch(path: String, reason: String)
    /// A training setting is out of range.
    case invalidTraining(String)
    /// A request the adapter registry cannot serve (unknown name, wrong batch size, …).
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "missing file: \(path)"
        case .invalidConfig(let path, let reason):
            return "invalid adapter config \(path): \(reason)"
        case .unsupported(let path, let option, let reason):
            return "\(path): '\(option)' is not supported: \(reason)"
        case .tensorMismatch(let path, let reason):
            return "adapter weights \(path): \(reason)"
        case .invalidTraining(let message):
            return "invalid training setting: \(message)"
        case .invalidRequest(let message):
            return "invalid adapter request: \(message)"
        }
    }

    public var errorDescription: String? { description }
}
