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

    /// Tells the kernel that bytes [offset, offset + count) of a mapped file will not be read for a while,
    /// so their pages leave this process's memory (they are read from the file again if touched). Used
    /// after a matrix is quantized at load. No effect on heap regions; only whole pages inside the range.
    func releasePages(offset: Int, count n: Int) {
        guard case .mapped(let p, let size) = owner, offset >= 0, n > 0, offset < size else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (offset + page - 1) / page * page, end = min(offset + n, size) / page * page
        if end > start { madvise(p + start, end - start, Int32(MADV_DONTNEED)) }
    }

    /// Mutable access for regions this process allocated (never for mapped files).
    var mutableBase: UnsafeMutableRawPointer? {
        if case .heap(let p) = owner { return p }
        return nil
    }

    /// Tells the kernel the bytes [offset, offset + count) of a mapped file are not needed now: their pages
    /// leave memory (and are read from the file again if touched). Only whole pages inside the range; a no-op
    /// for heap regions.
    func dropResidentPages(offset: Int, count: Int) {
        guard case .mapped(let p, let n) = owner, count > 0, offset >= 0, offset < n else { return }
        let page = max(Int(sysconf(Int32(_SC_PAGESIZE))), 1)
        let start = (offset + page - 1) / page * page, end = min(n, offset + min(count, n - offset)) / page * page
        guard end > start else { return }
        _ = madvise(p + start, end - start, MADV_DONTNEED)
    }

    deinit {
        switch owner {
        case .mapped(let p, let n): munmap(p, n)
        case .heap(let p): p.deallocate()
        }
    }
}
