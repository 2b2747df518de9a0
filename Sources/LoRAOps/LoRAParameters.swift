// The LoRA parameters of one adapter as one arena of floats with named slices (llm.c's
// malloc_and_point_parameters). A ``LoRALayout`` says where each adapted projection's A and B live;
// the same layout serves the weights, their gradients and AdamW's two moments, each its own
// ``FloatArena``, so optimizer code runs over flat arrays.
//   per slot: A (r, K) lora_A.weight, then B (N, r) lora_B.weight     K = in features, N = out features
import OPTEngine

/// One adapted projection's place in the arena.
public struct LoRASlot: Sendable, Equatable {
    public let layer: Int
    public let module: ProjectionModule
    public let r: Int
    public let inFeatures: Int  // K
    public let outFeatures: Int  // N
    public let scale: Float
    public let aOffset: Int  // A (r, K)
    public let bOffset: Int  // B (N, r)
    public var aCount: Int { r * inFeatures }
    public var bCount: Int { outFeatures * r }
}

/// Slots in layer order, then module order (q, k, v, out, fc1, fc2).
public struct LoRALayout: Sendable, Equatable {
    public let slots: [LoRASlot]
    /// Floats in an arena of this layout.
    public let count: Int
    private let index: [Int: Int]

    public init(targets: [AdapterTarget], model: OPTConfig) {
        var slots: [LoRASlot] = [], offset = 0, index: [Int: Int] = [:]
        for t in targets.sorted(by: { LoRALayout.key($0.layer, $0.module) < LoRALayout.key($1.layer, $1.module) }) {
            let (K, N) = LoRALayout.shape(t.module, model)
            let slot = LoRASlot(
                layer: t.layer, module: t.module, r: t.r, inFeatures: K, outFeatures: N,
                scale: t.scale, aOffset: offset, bOffset: offset + t.r * K)
            offset += t.r * K + N * t.r
            index[LoRALayout.key(t.layer, t.module)] = slots.count
            slots.append(slot)
        }
        self.slots = slots
        self.count = offset
        self.index = index
    }

    /// The floats a layout of `targets` holds (Σ r·(K + N)), or nil when that overflows Int: computed
    /// with checked arithmetic before ``init(targets:model:)`` sizes anything.
    public static func checkedParameterCount(targets: [AdapterTarget], model: OPTConfig) -> Int? {
        var total = 0
        for t in targets {
            let (K, N) = shape(t.module, model)
            let (sum, o1) = K.addingReportingOverflow(N)
            let (count, o2) = t.r.multipliedReportingOverflow(by: sum)
            let (next, o3) = total.addingReportingOverflow(count)
            guard !o1, !o2, !o3 else { return nil }
            total = next
        }
        return total
    }

    /// The slot of (layer, module), or nil when that projection is not adapted.
    @inline(__always)
    public func slot(layer: Int, module: ProjectionModule) -> LoRASlot? {
        index[LoRALayout.key(layer, module)].map { slots[$0] }
    }

    /// The index in ``slots`` of (layer, module), or nil.
    @inline(__always)
    public func slotIndex(layer: Int, module: ProjectionModule) -> Int? {
        index[LoRALayout.key(layer, module)]
    }

    public var maxRank: Int { slots.map(\.r).max() ?? 0 }
    public var layers: Set<Int> { Set(slots.map(\.layer)) }

    /// (in, out) features of a projection: attention (C, C), fc1 (C → F), fc2 (F → C).
    public static func shape(_ module: ProjectionModule, _ cfg: OPTConfig) -> (K: Int, N: Int) {
        switch module {
        case .fc1: return (cfg.hiddenSize, cfg.ffnDim)
        case .fc2: return (cfg.ffnDim, cfg.hiddenSize)
        default: return (cfg.hiddenSize, cfg.hiddenSize)
        }
    }

    static func key(_ layer: Int, _ module: ProjectionModule) -> Int {
        layer * 8 + (ProjectionModule.allCases.firstIndex(of: module) ?? 0)
    }
}

/// A zero-filled, 64-byte-aligned block of floats, allocated once.
public final class FloatArena: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { base.deallocate() }

    public func zero() { base.update(repeating: 0, count: count) }

    public func copy() -> FloatArena {
        let c = FloatArena(count: count)
        c.base.update(from: base, count: count)
        return c
    }

    public func update(from other: FloatArena) {
        precondition(other.count == count, "arena sizes differ")
        base.update(from: other.base, count: count)
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
    public func toArray() -> [Float] { Array(buffer) }

    /// A of `slot` (r, K) and B (N, r).
    @inline(__always) public func a(_ slot: LoRASlot) -> UnsafeMutablePointer<Float> { base + slot.aOffset }
    @inline(__always) public func b(_ slot: LoRASlot) -> UnsafeMutablePointer<Float> { base + slot.bOffset }
}
