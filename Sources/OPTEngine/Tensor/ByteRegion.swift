// ByteRegion: the bytes behind tensors — either a read-only memory map of a checkpoint file (weights
// are used in place, never copied) or an owned, 64-byte-aligned heap allocation.
import Foundation

public final class ByteRegion: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    private enum Owner { case mapped(UnsafeMutableRawPointer, Int), heap(UnsafeMutableRawPointer) }
    private let owner: Owner

    /// Maps the regular file `path` read-only. Throws `missingFile`, `notReadable`, `notAFile` or
    /// `corruptFile` naming the path.
    public init(mapping path: String) throws {
        let (fd, size) = try FileAccess.openRegularFile(path)
        defer { close(fd) }
        guard size > 0 else { throw EngineError.corruptFile(path: path, reason: "file is empty") }
        guard let ptr = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), ptr != MAP_FAILED else {
            throw EngineError.corruptFile(path: path, reason: "mmap failed (errno \(errno))")
        }
        base = UnsafeRawPointer(ptr)
        count = size
        owner = .mapped(ptr, size)
    }

    /// A zero-filled, 64-byte-aligned allocation of `byteCount` bytes.
    public init(allocating byteCount: Int) {
        let size = max(byteCount, 1)
        let ptr = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        ptr.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        base = UnsafeRawPointer(ptr)
        count = byteCount
        owner = .heap(ptr)
    }

    /// Mutable access for regions this process allocated (never for mapped files).
    public var mutableBase: UnsafeMutableRawPointer? {
        if case .heap(let p) = owner { return p }
        return nil
    }

    deinit {
        switch owner {
        case .mapped(let p, let n): munmap(p, n)
        case .heap(let p): p.deallocate()
        }
    }
}
