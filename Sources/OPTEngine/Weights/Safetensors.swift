// Safetensors: Hugging Face's tensor file. Layout: an 8-byte little-endian header length N, N bytes of
// JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}` (offsets
// relative to the byte after the header), then the raw little-endian data. Read memory-mapped: tensors
// are views into the mapping (an aligned copy only when a tensor's data is misaligned). Everything in
// the header is checked before it is trusted. The writer produces what Python's `safetensors` reads.
import Foundation

/// One `.safetensors` file, mapped read-only.
public struct SafetensorsFile: Sendable {
    public let path: String
    /// Tensor name → view into ``region`` (or an aligned heap copy for misaligned data).
    public let tensors: [String: Tensor]
    /// The `__metadata__` object of the header (empty when absent).
    public let metadata: [String: String]
    /// The mapping of the whole file.
    public let region: ByteRegion

    /// The largest header accepted: 16 MiB, room for about 100,000 tensors (a published checkpoint's
    /// header is under 1 MiB). The reference implementation allows 100 MB; parsing a header that size
    /// is refused rather than risked. Parsing needs a few times the header's size in memory.
    static let maxHeaderLength = 16 << 20

    /// Maps and validates `path`. Throws ``EngineError`` naming the file (and the tensor, where there
    /// is one) for every malformed header, range or size. Messages never quote the file's bytes: the
    /// 8-byte length prefix of a file that is not a safetensors file may be anything (a secret).
    public init(path: String) throws {
        func corrupt(_ reason: String) -> EngineError { .corruptFile(path: path, reason: reason) }

        let region = try ByteRegion(mapping: path)
        guard region.count >= 8 else {
            throw corrupt("file is \(region.count) bytes, too short for the 8-byte header length")
        }
        let declared = UInt64(littleEndian: region.base.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(region.count - 8) else {
            throw corrupt(
                "header length runs past the end of the file (\(region.count) bytes; not a safetensors file?)")
        }
        let headerLength = Int(declared)
        guard headerLength <= Self.maxHeaderLength else {
            throw corrupt("header length exceeds the \(Self.maxHeaderLength >> 20) MiB limit")
        }
        guard headerLength >= 2, region.base.load(fromByteOffset: 8, as: UInt8.self) == UInt8(ascii: "{") else {
            throw corrupt("header is not a JSON object")
        }
        let header = try SafetensorsHeader.parse(
            Data(
                bytesNoCopy: UnsafeMutableRawPointer(mutating: region.base + 8), count: headerLength,
                deallocator: .none),
            path: path)

        let dataStart = 8 + headerLength
        let dataLength = region.count - dataStart
        var ranges: [(name: String, begin: Int, end: Int)] = []
        var tensors: [String: Tensor] = [:]
        for (name, raw) in header.entries {
            let entry = try Self.checkEntry(name: name, raw, path: path)
            guard entry.end <= dataLength else {
                throw corrupt(
                    "tensor '\(name)': data_offsets [\(entry.begin), \(entry.end)] run past the end of the data "
                        + "(\(dataLength) bytes)")
            }
            ranges.append((name, entry.begin, entry.end))
            tensors[name] = checkpointTensor(
                dtype: entry.dtype, shape: entry.shape, region: region, byteOffset: dataStart + entry.begin)
        }
        ranges.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (previous, next) in zip(ranges, ranges.dropFirst()) where next.begin < previous.end {
            throw corrupt("tensors '\(previous.name)' and '\(next.name)' overlap")
        }
        self.path = path
        self.tensors = tensors
        self.metadata = header.metadata
        self.region = region
    }

    /// Checks one header entry: known dtype, non-negative shape, ordered offsets, size = shape × dtype.
    private static func checkEntry(name: String, _ entry: SafetensorsHeader.Entry, path: String) throws
        -> (dtype: DType, shape: [Int], begin: Int, end: Int)
    {
        func corrupt(_ reason: String) -> EngineError {
            .corruptFile(path: path, reason: "tensor '\(name)': \(reason)")
        }
        guard entry.isObject else { throw corrupt("header entry is not an object") }
        guard let dtypeName = entry.dtype else { throw corrupt("no dtype (or not a string)") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw EngineError.unsupportedDType(name: name, file: path, dtype: dtypeName)
        }
        guard let shape = entry.shape else { throw corrupt("shape is missing or not a list of integers") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw corrupt("shape \(shape) has a negative dimension") }
        guard let offsets = entry.dataOffsets, offsets.count == 2 else {
            throw corrupt("data_offsets is not a pair of integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0 else { throw corrupt("data_offsets [\(begin), \(end)] start inside the header") }
        guard begin <= end else { throw corrupt("data_offsets [\(begin), \(end)] end before they begin") }
        guard let bytes = checkedElementCount(shape + [dtype.byteSize]) else {
            throw corrupt("shape \(shape) is too large")
        }
        guard end - begin == bytes else {
            throw corrupt(
                "shape \(shape) of \(dtypeName) needs \(bytes) bytes but data_offsets [\(begin), \(end)] "
                    + "hold \(end - begin)")
        }
        return (dtype, shape, begin, end)
    }
}

// MARK: - writing

extension SafetensorsFile {
    /// Writes `tensors` to `path` in the standard layout. As Python's `safetensors` does, data are laid
    /// out back to back by element size (largest first), then by name, and the header is padded with
    /// spaces to a multiple of 8, so every tensor is aligned to its element size and reads back as a
    /// view. Written to a temporary file in the same directory, synced, then renamed over `path`, so
    /// readers never see a partial file.
    ///
    /// Throws ``EngineError/invalidRequest(_:)`` for duplicate or reserved names and
    /// ``EngineError/corruptFile(path:reason:)`` when the file cannot be written.
    public static func write(
        path: String, tensors: [(name: String, tensor: Tensor)], metadata: [String: String]? = nil
    ) throws {
        let sorted = tensors.sorted {
            ($1.tensor.dtype.byteSize, $0.name) < ($0.tensor.dtype.byteSize, $1.name)
        }
        var seen = Set<String>()
        for (name, _) in sorted where !seen.insert(name).inserted {
            throw EngineError.invalidRequest("safetensors write to \(path): tensor name '\(name)' appears twice")
        }
        if sorted.contains(where: { $0.name == "__metadata__" }) {
            throw EngineError.invalidRequest("safetensors write to \(path): '__metadata__' is not a tensor name")
        }

        var entries: [String] = []
        if let metadata, !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for (name, tensor) in sorted {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            let end = offset + tensor.byteCount
            entries.append(
                "\(jsonString(name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

        try writeAtomically(path: path) { sink in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try sink($0) }
            try header.withUnsafeBytes { try sink($0) }
            for (_, tensor) in sorted {
                try sink(UnsafeRawBufferPointer(start: tensor.raw, count: tensor.byteCount))
            }
        }
    }

    /// `string` as a JSON string literal.
    static func jsonString(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Writes a file through `body` (which calls the sink once per chunk) into a temporary sibling, syncs
/// it and renames it over `path`. The temporary file is removed on any failure.
func writeAtomically(
    path: String, _ body: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
) throws {
    func failure(_ what: String) -> EngineError {
        .corruptFile(path: path, reason: "cannot \(what): \(String(cString: strerror(errno)))")
    }
    let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw failure("create \(temporary)") }
    var closed = false
    var renamed = false
    defer {
        if !closed { close(fd) }
        if !renamed { unlink(temporary) }
    }
    try body { chunk in
        var done = 0
        while done < chunk.count {
            let n = Foundation.write(fd, chunk.baseAddress! + done, chunk.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("write \(temporary)") }
            done += n
        }
    }
    guard fsync(fd) == 0 else { throw failure("sync \(temporary)") }
    closed = true
    guard close(fd) == 0 else { throw failure("close \(temporary)") }
    guard rename(temporary, path) == 0 else { throw failure("rename \(temporary) to \(path)") }
    renamed = true
    // Make the rename itself durable.
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let dirFD = open(directory, O_RDONLY)
    if dirFD >= 0 {
        fsync(dirFD)
        close(dirFD)
    }
}
