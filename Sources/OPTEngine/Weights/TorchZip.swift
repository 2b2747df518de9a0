// TorchZip: `pytorch_model.bin` as torch.save writes it — a zip archive holding `<top>/data.pkl` (the
// state dict as a pickle, read by TorchUnpickler) and one entry `<top>/data/<key>` per storage. The zip
// is read by hand from its central directory (ZIP64 included); entries must be STORED, as torch writes
// them, and are used in place in the mapped file. Tensors are views into those entries.
import Foundation

// MARK: - what the pickle describes (built by TorchUnpickler)

/// A storage as named by the pickle's persistent id `("storage", type, key, location, numel)`.
struct TorchStorageRef {
    let key: String
    let typeName: String  // e.g. "FloatStorage", for messages
    let dtype: DType?  // nil: a torch dtype this engine does not read
    let numel: Int  // in elements of `dtype`
}

/// A tensor as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` describes it.
struct TorchTensorRecord {
    let storage: TorchStorageRef
    let storageOffset: Int  // in elements
    let size: [Int]
    let stride: [Int]  // in elements
}

// MARK: - the zip container

/// One entry of a zip central directory.
struct ZipEntry {
    let name: String
    let method: UInt16  // 0 = stored
    let flags: UInt16
    let compressedSize: Int
    let size: Int
    let localHeaderOffset: Int
}

/// The central directory of a mapped zip file.
struct ZipArchive {
    let path: String
    let region: ByteRegion
    let entries: [String: ZipEntry]

    private static let endOfDirectory: UInt32 = 0x0605_4B50
    private static let zip64Locator: UInt32 = 0x0706_4B50
    private static let zip64EndOfDirectory: UInt32 = 0x0606_4B50
    private static let directoryEntry: UInt32 = 0x0201_4B50
    private static let localHeader: UInt32 = 0x0403_4B50

    init(path: String) throws {
        self.path = path
        region = try ByteRegion(mapping: path)
        let bytes = UnsafeRawBufferPointer(start: region.base, count: region.count)
        func corrupt(_ reason: String) -> EngineError { .corruptFile(path: path, reason: reason) }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) throws -> T {
            guard offset >= 0, offset <= bytes.count - MemoryLayout<T>.size else {
                throw corrupt("zip structure at offset \(offset) runs past the end of the file")
            }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        func int64(_ offset: Int) throws -> Int {
            let value = try read(offset, UInt64.self)
            guard value <= UInt64(Int.max) else { throw corrupt("zip64 field at offset \(offset) is too large") }
            return Int(value)
        }

        // The end-of-central-directory record: the last 22+ bytes, before a comment of up to 64 KiB.
        guard bytes.count >= 22 else { throw corrupt("too short to be a zip archive (\(bytes.count) bytes)") }
        var eocd = bytes.count - 22
        let lowest = max(0, eocd - 65_535)
        while eocd >= lowest, try read(eocd, UInt32.self) != Self.endOfDirectory { eocd -= 1 }
        guard eocd >= lowest else {
            if bytes[0] == 0x80 {
                throw corrupt("a bare pickle: the legacy (before torch 1.6) torch.save format is not read; re-save it")
            }
            throw corrupt("no zip end-of-central-directory record (truncated, or not a torch.save zip archive)")
        }
        var count = Int(try read(eocd + 10, UInt16.self))
        var directorySize = Int(try read(eocd + 12, UInt32.self))
        var directoryOffset = Int(try read(eocd + 16, UInt32.self))
        if eocd >= 20, try read(eocd - 20, UInt32.self) == Self.zip64Locator {
            let record = try int64(eocd - 20 + 8)
            guard try read(record, UInt32.self) == Self.zip64EndOfDirectory else {
                throw corrupt("zip64 locator points at offset \(record), which holds no zip64 directory record")
            }
            count = try int64(record + 32)
            directorySize = try int64(record + 40)
            directoryOffset = try int64(record + 48)
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw corrupt("zip central directory [\(directoryOffset), +\(directorySize)) lies outside the file")
        }

        var entries: [String: ZipEntry] = [:]
        var at = directoryOffset
        for _ in 0..<count {
            guard try read(at, UInt32.self) == Self.directoryEntry else {
                throw corrupt("bad zip central directory entry at offset \(at)")
            }
            let nameLength = Int(try read(at + 28, UInt16.self))
            let extraLength = Int(try read(at + 30, UInt16.self))
            let commentLength = Int(try read(at + 32, UInt16.self))
            guard at + 46 + nameLength + extraLength <= bytes.count else {
                throw corrupt("zip central directory entry at offset \(at) runs past the end of the file")
            }
            let name = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            var compressed = Int(try read(at + 20, UInt32.self))
            var size = Int(try read(at + 24, UInt32.self))
            var local = Int(try read(at + 42, UInt32.self))
            // ZIP64 extended information (id 1): 8-byte values for each 32-bit field that is 0xFFFFFFFF.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try read(extra, UInt16.self)
                let length = Int(try read(extra + 2, UInt16.self))
                guard extra + 4 + length <= extraEnd else { break }
                if id == 1 {
                    var field = extra + 4
                    let fieldEnd = field + length
                    func next(_ value: Int) throws -> Int {
                        guard value == 0xFFFF_FFFF, field + 8 <= fieldEnd else { return value }
                        defer { field += 8 }
                        return try int64(field)
                    }
                    size = try next(size)
                    compressed = try next(compressed)
                    local = try next(local)
                }
                extra += 4 + length
            }
            entries[name] = ZipEntry(
                name: name, method: try read(at + 10, UInt16.self), flags: try read(at + 8, UInt16.self),
                compressedSize: compressed, size: size, localHeaderOffset: local)
            at += 46 + nameLength + extraLength + commentLength
        }
        self.entries = entries
    }

    /// Where `entry`'s bytes lie in ``region``: after its local header. Refuses compressed or encrypted
    /// entries and ranges outside the file.
    func dataRange(of entry: ZipEntry) throws -> Range<Int> {
        func corrupt(_ reason: String) -> EngineError { .corruptFile(path: path, reason: reason) }
        guard entry.method == 0 else {
            throw corrupt(
                "zip entry '\(entry.name)' is compressed (method \(entry.method)); torch.save stores entries "
                    + "uncompressed, re-save the checkpoint with torch.save")
        }
        guard entry.flags & 1 == 0 else { throw corrupt("zip entry '\(entry.name)' is encrypted") }
        guard entry.compressedSize == entry.size else {
            throw corrupt("zip entry '\(entry.name)' is stored with \(entry.compressedSize) bytes for \(entry.size)")
        }
        let local = entry.localHeaderOffset
        guard local >= 0, local <= region.count - 30,
            region.base.loadUnaligned(fromByteOffset: local, as: UInt32.self).littleEndian == Self.localHeader
        else { throw corrupt("zip entry '\(entry.name)' has no local header at offset \(local)") }
        let nameLength = Int(region.base.loadUnaligned(fromByteOffset: local + 26, as: UInt16.self).littleEndian)
        let extraLength = Int(region.base.loadUnaligned(fromByteOffset: local + 28, as: UInt16.self).littleEndian)
        let start = local + 30 + nameLength + extraLength
        guard start <= region.count, entry.size <= region.count - start else {
            throw corrupt("zip entry '\(entry.name)' runs past the end of the file")
        }
        return start..<(start + entry.size)
    }
}

// MARK: - the torch.save archive

/// A `torch.save` checkpoint (`pytorch_model.bin`): a state dict of tensors, memory-mapped.
public struct TorchZipFile: Sendable {
    public let path: String
    /// Tensor name → view into the archive (or a contiguous, aligned heap copy when needed).
    public let tensors: [String: Tensor]

    /// Maps and reads `path`. Throws ``EngineError`` naming the file (and tensor) on any defect,
    /// including a pickle that names a global outside the allowed list.
    public init(path: String) throws {
        func corrupt(_ reason: String) -> EngineError { .corruptFile(path: path, reason: reason) }
        let archive = try ZipArchive(path: path)
        // The top folder is the archive's name at save time ("archive", "pytorch_model", …).
        let pickles = archive.entries.keys.filter { name in
            name.hasSuffix("/data.pkl") && name.dropLast("/data.pkl".count).firstIndex(of: "/") == nil
        }
        guard pickles.count == 1, let pickleName = pickles.first else {
            throw corrupt("expected one <folder>/data.pkl entry, found \(pickles.count) (not a torch.save archive)")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"] {
            let range = try archive.dataRange(of: order)
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: archive.bytes[range]), as: UTF8.self)
            guard text == "little" else { throw corrupt("byte order is '\(text)'; only little-endian is read") }
        }
        let pickleRange = try archive.dataRange(of: archive.entries[pickleName]!)
        var unpickler = TorchUnpickler(path: path, bytes: UnsafeRawBufferPointer(rebasing: archive.bytes[pickleRange]))
        var tensors: [String: Tensor] = [:]
        for (key, value) in try unpickler.loadDict() {
            guard case .string(let name) = key else { throw corrupt("state dict has a \(key.kind) key") }
            guard case .tensor(let record) = value else {
                throw corrupt("state dict entry '\(name)' is a \(value.kind), not a tensor")
            }
            guard let dtype = record.storage.dtype else {
                throw EngineError.unsupportedDType(name: name, file: path, dtype: record.storage.typeName)
            }
            let entryName = prefix + "data/" + record.storage.key
            guard let entry = archive.entries[entryName] else {
                throw corrupt("tensor '\(name)': storage entry '\(entryName)' is missing from the archive")
            }
            let range: Range<Int>
            do {
                range = try archive.dataRange(of: entry)
            } catch EngineError.corruptFile(_, let reason) {
                throw corrupt("tensor '\(name)': \(reason)")
            }
            tensors[name] = try Self.tensor(
                name: name, record: record, dtype: dtype, region: archive.region, storage: range, path: path)
        }
        self.path = path
        self.tensors = tensors
    }

    /// The tensor `record` describes, within the storage bytes `storage`: a view when its strides are
    /// row-major contiguous, else a contiguous heap copy.
    private static func tensor(
        name: String, record: TorchTensorRecord, dtype: DType, region: ByteRegion, storage: Range<Int>, path: String
    ) throws -> Tensor {
        func corrupt(_ reason: String) -> EngineError {
            .corruptFile(path: path, reason: "tensor '\(name)': \(reason)")
        }
        let size = record.size
        let stride = record.stride
        let elementSize = dtype.byteSize
        guard size.count == stride.count else { throw corrupt("size \(size) and stride \(stride) differ in rank") }
        guard let count = checkedElementCount(size) else { throw corrupt("size \(size) is invalid") }
        guard record.storageOffset >= 0, stride.allSatisfy({ $0 >= 0 }) else {
            throw corrupt("negative storage offset \(record.storageOffset) or stride \(stride)")
        }
        let storageElements = record.storage.numel
        guard storageElements <= storage.count / elementSize else {
            throw corrupt(
                "storage '\(record.storage.key)' holds \(storage.count) bytes, too few for its \(storageElements) "
                    + "\(record.storage.typeName) elements")
        }
        guard record.storageOffset <= storageElements else {
            throw corrupt("storage offset \(record.storageOffset) lies past storage '\(record.storage.key)'")
        }
        // One past the last element addressed: offset + Σ (size_i − 1)·stride_i + 1 (nothing when empty).
        var extent = count == 0 ? 0 : record.storageOffset + 1
        for (n, s) in zip(size, stride) where count > 0 {
            let (step, overflow) = (n - 1).multipliedReportingOverflow(by: s)
            guard !overflow, extent <= Int.max - step else { throw corrupt("stride \(stride) is too large") }
            extent += step
        }
        guard extent <= storageElements else {
            throw corrupt(
                "size \(size), stride \(stride) at offset \(record.storageOffset) need \(extent) elements, "
                    + "storage '\(record.storage.key)' has \(storageElements)")
        }
        // The tensor's bytes must fit in what the storage holds from the offset on: this bounds every
        // copy below by the file's size (a stride-0 "broadcast" of a small storage is refused, never
        // materialised) and keeps `count * elementSize` from overflowing.
        let available = storageElements - record.storageOffset
        guard count <= available else {
            throw corrupt(
                "size \(size) has \(count) elements, more than the \(available) storage '\(record.storage.key)' "
                    + "holds from offset \(record.storageOffset) (broadcast strides are not read)")
        }
        let start = storage.lowerBound + record.storageOffset * elementSize
        if isContiguous(size: size, stride: stride) {
            return checkpointTensor(dtype: dtype, shape: size, region: region, byteOffset: start)
        }
        // Gather element by element in row-major order; every source index is < extent ≤ storageElements.
        let copy = ByteRegion(allocating: count * elementSize)
        var index = [Int](repeating: 0, count: size.count)
        for i in 0..<count {
            var source = 0
            for d in 0..<size.count { source += index[d] * stride[d] }
            (copy.mutableBase! + i * elementSize).copyMemory(
                from: region.base + start + source * elementSize, byteCount: elementSize)
            var d = size.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < size[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return Tensor(dtype: dtype, shape: size, region: copy)
    }

    /// Row-major strides (dimensions of size 1 may have any stride).
    static func isContiguous(size: [Int], stride: [Int]) -> Bool {
        if size.contains(0) { return true }
        var expected = 1
        for d in (0..<size.count).reversed() where size[d] != 1 {
            if stride[d] != expected { return false }
            expected *= size[d]
        }
        return true
    }
}

extension ZipArchive {
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: region.base, count: region.count) }
}
