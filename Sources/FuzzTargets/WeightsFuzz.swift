// WeightsFuzz: the checkpoint readers. One part is the weight file itself; several parts are a sharded
// checkpoint: the index first, then the shards under the names the fixtures' index uses
// (model-0000N-of-0000M.safetensors / pytorch_model-0000N-of-0000M.bin). Every tensor a reader returns
// must lie inside its byte region and be readable to the last element.
//
//   safetensors:  model.safetensors                      or  index.json SEP shard1 SEP shard2 …
//   torch:        pytorch_model.bin                      or  index.json SEP shard1 SEP shard2 …
import Foundation
import OPTEngine

enum WeightsFuzz {
    /// Tensors up to this many elements are read in full (larger ones are bounds-checked only).
    static let readLimit = 1 << 20

    static func safetensors(_ input: FuzzInput) {
        let parts = input.parts
        if parts.count == 1 {
            _ = ScratchDirectory.reset([("model.safetensors", parts[0])])
            if let file = attempt(
                "SafetensorsFile", { try SafetensorsFile(path: ScratchDirectory.file("model.safetensors")) })
            {
                touch(file.tensors, region: file.region)
            }
        } else {
            _ = ScratchDirectory.reset(
                sharded(
                    parts, index: "model.safetensors.index.json",
                    shard: { "model-0000\($0)-of-0000\($1).safetensors" }))
        }
        loadCheckpoint()
    }

    static func torch(_ input: FuzzInput) {
        let parts = input.parts
        if parts.count == 1 {
            _ = ScratchDirectory.reset([("pytorch_model.bin", parts[0])])
        } else {
            _ = ScratchDirectory.reset(
                sharded(
                    parts, index: "pytorch_model.bin.index.json",
                    shard: { "pytorch_model-0000\($0)-of-0000\($1).bin" }))
        }
        loadCheckpoint()
    }

    /// index, then at most 9 shards (more parts are dropped).
    private static func sharded(_ parts: [[UInt8]], index: String, shard: (Int, Int) -> String) -> [(String, [UInt8]?)]
    {
        let shards = Array(parts.dropFirst().prefix(9))
        var files: [(String, [UInt8]?)] = [(index, parts[0])]
        for (i, bytes) in shards.enumerated() { files.append((shard(i + 1, shards.count), bytes)) }
        return files
    }

    private static func loadCheckpoint() {
        guard
            let checkpoint = attempt(
                "CheckpointReader.load", { try CheckpointReader.load(directory: ScratchDirectory.path) })
        else { return }
        touch(checkpoint.tensors, region: nil)
    }

    /// Checks every tensor against its region and reads the small ones element by element.
    static func touch(_ tensors: [String: Tensor], region: ByteRegion?) {
        for (name, tensor) in tensors {
            var count = 1
            for dimension in tensor.shape {
                precondition(dimension >= 0, "tensor \(name): negative dimension accepted")
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                precondition(!overflow, "tensor \(name): element count overflows")
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: tensor.dtype.byteSize)
            precondition(!overflow, "tensor \(name): byte count overflows")
            precondition(
                tensor.byteOffset >= 0 && tensor.byteOffset <= tensor.region.count - bytes,
                "tensor \(name): \(bytes) bytes at \(tensor.byteOffset) reach past its region of \(tensor.region.count)"
            )
            if let region, tensor.region === region {
                precondition(tensor.byteOffset + bytes <= region.count, "tensor \(name) reaches past the file")
            }
            if count <= readLimit {
                var sum: Float = 0
                for value in tensor.toFloatArray() { sum += value.isFinite ? 0 : 1 }
                _ = sum
            }
        }
    }
}
