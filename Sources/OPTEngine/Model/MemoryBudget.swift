// MemoryBudget: the bytes the engine may use for a model's weights and working buffers. Loading a
// checkpoint, opening a session or loading an adapter estimates what it needs first and refuses, with
// an error naming what is too big, the estimate and the limit, anything over the budget — so a small
// hostile file (a config with millions of positions, an adapter with r = 2^40) is an error, not an
// abort of the whole process. The default comes from MUWA_MEMORY_LIMIT, else the cgroup's memory.max
// (systemd's MemoryMax=), else physical memory. Detection is pure functions of the texts read, plus
// one function that reads them from this process's /proc and /sys.
import Foundation

public struct MemoryBudget: Sendable, Equatable, CustomStringConvertible {
    /// The limit in bytes (`Int.max`: no limit).
    public let bytes: Int

    public init(bytes: Int) { self.bytes = max(0, bytes) }

    /// No limit.
    public static let unlimited = MemoryBudget(bytes: .max)

    public var description: String { bytes == .max ? "unlimited" : Self.format(bytes) }

    /// Throws ``EngineError/overMemoryBudget(what:estimate:limit:)`` when `estimate` bytes exceed the
    /// budget. `what` names the thing, e.g. "model /m (weights 250 MiB + buffers for 1 × 2048 tokens)".
    public func check(_ estimate: Int, for what: @autoclosure () -> String) throws {
        guard estimate > bytes else { return }
        throw EngineError.overMemoryBudget(what: what(), estimate: estimate, limit: bytes)
    }

    // MARK: - parsing a setting

    /// A size as MUWA_MEMORY_LIMIT / --memory-limit take it: bytes ("1073741824"), or a number with a
    /// binary unit — K/KiB, M/MiB, G/GiB, T/TiB (K, M, G, T mean KiB, MiB, GiB, TiB as systemd's) —
    /// optionally fractional ("1.5GiB"); "max", "none" or "unlimited" for no limit.
    /// Throws ``EngineError/invalidRequest(_:)`` naming `setting` for anything else.
    public static func parse(_ text: String, setting: String = "MUWA_MEMORY_LIMIT") throws -> MemoryBudget {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        func bad() -> EngineError {
            .invalidRequest(
                "\(setting) '\(trimmed.prefix(40))' is not a size (e.g. 8GiB, 512MiB, a number of bytes or max)")
        }
        if ["max", "none", "unlimited", "infinity"].contains(trimmed.lowercased()) { return .unlimited }
        let number = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        let shifts: [String: Int] = [
            "": 0, "b": 0, "k": 10, "kib": 10, "kb": 10, "m": 20, "mib": 20, "mb": 20, "g": 30, "gib": 30, "gb": 30,
            "t": 40, "tib": 40, "tb": 40,
        ]
        guard !number.isEmpty, number.count <= 20, let shift = shifts[unit] else { throw bad() }
        if !number.contains("."), let whole = Int(number) {
            guard whole <= Int.max >> shift else { throw bad() }
            return MemoryBudget(bytes: whole << shift)
        }
        guard let value = Double(number), value.isFinite, value * Double(1 << shift) < 9.0e18 else { throw bad() }
        return MemoryBudget(bytes: Int(value * Double(1 << shift)))
    }

    // MARK: - detecting the default

    /// Where a detected budget came from, for the start-up log.
    public enum Source: String, Sendable { case setting, cgroup, physicalMemory = "physical memory", none }

    /// The budget from what this process can read: `setting` (MUWA_MEMORY_LIMIT's value) when given,
    /// else the smaller of the cgroup limit and physical memory, else no limit. Pure: the caller passes
    /// the texts of /proc/self/cgroup, each memory.max / memory.limit_in_bytes on the way from the
    /// process's cgroup up to the root (``cgroupLimitPaths(procSelfCgroup:cgroupRoot:)``), and /proc/meminfo.
    static func detect(setting: String?, cgroupLimits: [String], meminfo: String?) throws
        -> (budget: MemoryBudget, source: Source)
    {
        if let setting, !setting.trimmingCharacters(in: .whitespaces).isEmpty {
            return (try parse(setting), .setting)
        }
        let cgroup = cgroupLimits.compactMap(parseCgroupLimit).min()
        let physical = meminfo.flatMap(parseMemTotal)
        switch (cgroup, physical) {
        case (let c?, let p?):
            return c <= p ? (MemoryBudget(bytes: c), .cgroup) : (MemoryBudget(bytes: p), .physicalMemory)
        case (let c?, nil): return (MemoryBudget(bytes: c), .cgroup)
        case (nil, let p?): return (MemoryBudget(bytes: p), .physicalMemory)
        case (nil, nil): return (.unlimited, .none)
        }
    }

    /// A cgroup limit file's text: v2 memory.max ("max" or bytes) or v1 memory.limit_in_bytes (bytes; a
    /// value near Int64.max means none). nil for no limit or text that is not a limit.
    static func parseCgroupLimit(_ text: String) -> Int? {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value != "max", let n = Int(value), n > 0, n < 1 << 60 else { return nil }
        return n
    }

    /// MemTotal of /proc/meminfo ("MemTotal:       24576000 kB") in bytes.
    static func parseMemTotal(_ meminfo: String) -> Int? {
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int(fields[1]), kib > 0, kib < 1 << 50 else { return nil }
            return kib << 10
        }
        return nil
    }

    /// The limit files that apply to the process whose /proc/self/cgroup reads `procSelfCgroup`: for
    /// cgroup v2 ("0::/system.slice/muwad.service") `<root>/system.slice/muwad.service/memory.max`, then
    /// each parent's; for v1 ("N:memory:/path") `<root>/memory/path/memory.limit_in_bytes` and parents'.
    static func cgroupLimitPaths(procSelfCgroup: String, cgroupRoot: String = "/sys/fs/cgroup") -> [String] {
        var paths: [String] = []
        for line in procSelfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[2].hasPrefix("/"), !parts[2].contains("..") else { continue }
            let (base, file): (String, String)
            if parts[0] == "0" && parts[1].isEmpty {
                (base, file) = (cgroupRoot, "memory.max")
            } else if parts[1].split(separator: ",").contains("memory") {
                (base, file) = (cgroupRoot + "/memory", "memory.limit_in_bytes")
            } else {
                continue
            }
            var components = parts[2].split(separator: "/").map(String.init)
            while true {
                paths.append(([base] + components + [file]).joined(separator: "/"))
                guard !components.isEmpty else { break }
                components.removeLast()
            }
        }
        return paths
    }

    /// The budget of this process: MUWA_MEMORY_LIMIT from `environment`, else its cgroup's limit, else
    /// physical memory. Throws when MUWA_MEMORY_LIMIT is set but not a size.
    public static func detectFromSystem(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (budget: MemoryBudget, source: Source)
    {
        func text(_ path: String) -> String? {  // /proc and /sys files: their stat size is not their length
            guard let data = FileAccess.readPseudoFile(path) else { return nil }
            return String(decoding: data, as: UTF8.self)
        }
        let setting = environment["MUWA_MEMORY_LIMIT"]
        if let setting, !setting.trimmingCharacters(in: .whitespaces).isEmpty {
            return try detect(setting: setting, cgroupLimits: [], meminfo: nil)
        }
        let limits = cgroupLimitPaths(procSelfCgroup: text("/proc/self/cgroup") ?? "").compactMap(text)
        return try detect(setting: nil, cgroupLimits: limits, meminfo: text("/proc/meminfo"))
    }

    /// MemTotal of this machine's /proc/meminfo, nil where it cannot be read.
    public static func physicalMemory() -> Int? {
        guard let data = FileAccess.readPseudoFile("/proc/meminfo") else { return nil }
        return parseMemTotal(String(decoding: data, as: UTF8.self))
    }

    /// `bytes` for messages: "512 MiB", "8.0 GiB", "1234 bytes".
    /// A size for messages; Int.max (a saturated estimate) reads "more than 8 EiB".
    public static func format(_ bytes: Int) -> String {
        if bytes == .max { return "more than 8 EiB" }
        if bytes >= 1 << 30 { return String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
        if bytes >= 1 << 20 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
