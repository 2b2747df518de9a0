// Checkpoint: finds the weights of a Hugging Face model directory and reads them, whichever of the
// four layouts it uses (one safetensors file, sharded safetensors, one pytorch_model.bin, sharded bin).
// Tensors keep the names they were stored under; mapping `decoder.…` / `model.decoder.…` onto the
// model's parameters is the loader's job, not this file's.
import Foundation

/// Every tensor of a checkpoint directory, as views into the mapped files.
public struct CheckpointTensors: Sendable {
    /// Tensor name (exactly as stored) → tensor.
    public let tensors: [String: Tensor]
    /// Tensor name → path of the file it was read from.
    public let files: [String: String]
    /// The directory that was read.
    public let directory: String
}

/// Reads the weights of a model directory (``load(directory:)``).
public enum CheckpointReader {
    /// The weight files looked for, in order of preference.
    public static let candidates = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ]

    /// Loads the first of ``candidates`` present in `directory`.
    ///
    /// Throws ``EngineError/missingDirectory(path:)`` / ``EngineError/notADirectory(path:)`` /
    /// ``EngineError/notReadable(path:)`` for a bad directory, ``EngineError/missingFile(path:)`` when no
    /// candidate is there (or a shard named by an index is missing), ``EngineError/corruptFile(path:reason:)`` or ``EngineError/unsupportedDType(name:file:dtype:)``
    /// when a file cannot be read.
    public static func load(directory: String) throws -> CheckpointTensors {
        try FileAccess.requireDirectory(directory)
        let dir = URL(fileURLWithPath: directory)
        for name in candidates {
            let path = dir.appendingPathComponent(name).path
            guard FileAccess.exists(path) else { continue }
            switch name {
            case "model.safetensors":
                let file = try SafetensorsFile(path: path)
                return single(file.tensors, path: path, directory: directory)
            case "pytorch_model.bin":
                let file = try TorchZipFile(path: path)
                return single(file.tensors, path: path, directory: directory)
            default:
                return try loadSharded(indexPath: path, directory: directory)
            }
        }
        let looked = candidates.map { dir.appendingPathComponent($0).path }.joined(separator: " or ")
        throw EngineError.missingFile(path: looked)
    }

    private static func single(_ tensors: [String: Tensor], path: String, directory: String) -> CheckpointTensors {
        CheckpointTensors(tensors: tensors, files: tensors.mapValues { _ in path }, directory: directory)
    }

    /// A sharded checkpoint: `{"metadata": …, "weight_map": {tensor name: shard file name}}`.
    /// Every shard named is read; each tensor is taken from the shard the map names.
    private static func loadSharded(indexPath: String, directory: String) throws -> CheckpointTensors {
        let data = try FileAccess.readFile(indexPath, limit: 16 << 20)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw EngineError.corruptFile(path: indexPath, reason: "not valid JSON")
        }
        guard let root = json as? [String: Any], let map = root["weight_map"] as? [String: Any] else {
            throw EngineError.corruptFile(path: indexPath, reason: "no \"weight_map\" object")
        }
        var shardOf: [String: String] = [:]  // tensor name → shard file name
        for (tensorName, value) in map {
            guard let shard = value as? String, !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".."
            else {
                throw EngineError.corruptFile(
                    path: indexPath, reason: "weight_map entry for '\(tensorName)' is not a file name in this directory"
                )
            }
            shardOf[tensorName] = shard
        }
        let isBin = indexPath.hasSuffix(".bin.index.json")
        let dir = URL(fileURLWithPath: directory)
        var shardTensors: [String: [String: Tensor]] = [:]  // shard file name → its tensors
        for shard in Set(shardOf.values).sorted() {
            let path = dir.appendingPathComponent(shard).path
            shardTensors[shard] = try isBin ? TorchZipFile(path: path).tensors : SafetensorsFile(path: path).tensors
        }
        var tensors: [String: Tensor] = [:]
        var files: [String: String] = [:]
        // Tensors a shard holds but the map does not mention are kept too (first shard in name order wins).
        for shard in shardTensors.keys.sorted() {
            for (name, tensor) in shardTensors[shard]! where shardOf[name] == nil && tensors[name] == nil {
                tensors[name] = tensor
                files[name] = dir.appendingPathComponent(shard).path
            }
        }
        for (name, shard) in shardOf {
            let path = dir.appendingPathComponent(shard).path
            guard let tensor = shardTensors[shard]?[name] else {
                throw EngineError.missingTensor(name: name, file: path)
            }
            tensors[name] = tensor
            files[name] = path
        }
        return CheckpointTensors(tensors: tensors, files: files, directory: directory)
    }
}

// MARK: - shared by the readers

/// A tensor over `region` at `byteOffset`: a view when the data is aligned to the element size (the
/// usual case: no copy), otherwise an aligned heap copy, so that kernels may load elements directly.
func checkpointTensor(dtype: DType, shape: [Int], region: ByteRegion, byteOffset: Int) -> Tensor {
    let address = UInt(bitPattern: region.base + byteOffset)
    if address % UInt(dtype.byteSize) == 0 {
        return Tensor(dtype: dtype, shape: shape, region: region, byteOffset: byteOffset)
    }
    let byteCount = shape.reduce(1, *) * dtype.byteSize
    let copy = ByteRegion(allocating: byteCount)
    copy.mutableBase!.copyMemory(from: region.base + byteOffset, byteCount: byteCount)
    return Tensor(dtype: dtype, shape: shape, region: copy)
}

/// The element count of `shape`, or nil when a dimension is negative or the product overflows.
func checkedElementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        n = p
    }
    return n
}
