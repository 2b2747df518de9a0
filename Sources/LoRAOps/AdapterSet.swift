// AdapterSet: the adapters loaded over one shared OPTModel, by name. Adding or removing one touches
// only the adapter's own small matrices — never the base weights. A batch picks an adapter (or none)
// per sequence through an ``AdapterBatch``, the engine's ``ProjectionDelta``: after every base
// projection it adds scale · B(A x) to the rows of the sequences that use an adapter with that
// projection, one gemm pair per run of neighbouring sequences that share an adapter.
import Foundation
import OPTEngine

public final class AdapterSet: @unchecked Sendable {
    public let model: OPTModel
    private var entries: [String: PreparedAdapter] = [:]
    private let lock = NSLock()

    public init(model: OPTModel) {
        self.model = model
    }

    /// Registers `adapter` under `name` (replacing any adapter of that name).
    ///
    /// Throws when it does not fit the model, or when it replaces layer-norm biases (peft's bias
    /// "all"), which only a merged model can carry.
    public func add(_ adapter: LoRAAdapter, name: String) throws {
        let prepared = try PreparedAdapter(adapter, model: model)
        lock.lock(); defer { lock.unlock() }
        entries[name] = prepared
    }

    /// Loads the adapter in `directory` and registers it as `name` (default: the directory's last component).
    @discardableResult
    public func load(directory: String, name: String? = nil) throws -> LoRAAdapter {
        let adapter = try LoRAAdapter.load(directory: directory, model: model.config, memoryBudget: model.memoryBudget)
        try add(adapter, name: name ?? URL(fileURLWithPath: directory).lastPathComponent)
        return adapter
    }

    /// Drops an adapter; batches already made with it keep it alive until they are done.
    @discardableResult
    public func remove(name: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return entries.removeValue(forKey: name) != nil
    }

    public var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return entries.keys.sorted()
    }

    public func adapter(named name: String) -> LoRAAdapter? {
        lock.lock(); defer { lock.unlock() }
        return entries[name]?.adapter
    }

    /// The delta for one batch: sequence b uses the adapter named `assignments[b]`, or none when nil.
    public func batch(_ assignments: [String?]) throws -> AdapterBatch {
        lock.lock(); defer { lock.unlock() }
        let chosen = try assignments.map { name -> PreparedAdapter? in
            guard let name else { return nil }
            guard let e = entries[name] else {
                throw LoRAError.invalidRequest(
                    "no adapter named '\(name)' (loaded: \(entries.keys.sorted().joined(separator: ", ")))")
            }
            return e
        }
        return AdapterBatch(perSequence: chosen)
    }

    /// One delta per sequence for a decode batch (Generator, BatchDecoder): sequence b uses the adapter named
    /// `assignments[b]`, or none when nil; sequences naming the same adapter share one delta object.
    public func sequenceDeltas(_ assignments: [String?]) throws -> [ProjectionDelta?] {
        lock.lock(); defer { lock.unlock() }
        var shared: [String: AdapterBatch] = [:]
        return try assignments.map { name -> ProjectionDelta? in
            guard let name else { return nil }
            if let delta = shared[name] { return delta }
            guard let e = entries[name] else {
                throw LoRAError.invalidRequest(
                    "no adapter named '\(name)' (loaded: \(entries.keys.sorted().joined(separator: ", ")))")
            }
            let delta = AdapterBatch(perSequence: [e], uniform: true)
            shared[name] = delta
            return delta
        }
    }
}

/// An adapter checked against a model, with its bias replacements turned into deltas.
final class PreparedAdapter: @unchecked Sendable {
    let adapter: LoRAAdapter
    /// (N) bias − base bias, per adapted site with a replaced bias.
    let biasDelta: [ProjectionSite: [Float]]

    init(_ adapter: LoRAAdapter, model: OPTModel) throws {
        try adapter.checkCompatible(with: model.config)
        let name = adapter.source ?? "adapter"
        if !adapter.biases.layerNorms.isEmpty {
            throw LoRAError.unsupported(
                path: name, option: "bias",
                reason: "\"\(adapter.config.bias.rawValue)\" replaces layer-norm biases, which "
                    + "only a merged model can carry (merge it: --merge)")
        }
        var deltas: [ProjectionSite: [Float]] = [:]
        for (site, bias) in adapter.biases.projections {
            let base =
                model.weights.layers[site.layer].linear(site.module).bias?.toFloatArray()
                ?? [Float](repeating: 0, count: bias.count)
            deltas[site] = zip(bias, base).map { $0 - $1 }
        }
        self.adapter = adapter
        self.biasDelta = deltas
    }
}

/// The ``ProjectionDelta`` of one batch. Owns its scratch (grown on demand, never shrunk), so use
/// one per concurrently running batch.
public final class AdapterBatch: ProjectionDelta, @unchecked Sendable {
    let perSequence: [PreparedAdapter?]
    /// When true every sequence uses `perSequence[0]`, whatever the batch size.
    private let uniform: Bool
    private var scratch: UnsafeMutablePointer<Float>
    private var capacity = 0

    init(perSequence: [PreparedAdapter?], uniform: Bool = false) {
        self.perSequence = perSequence
        self.uniform = uniform
        scratch = .allocate(capacity: 1)
    }

    /// Every sequence of any batch uses `adapter` (it must fit `model`).
    public convenience init(adapter: LoRAAdapter, model: OPTModel) throws {
        self.init(perSequence: [try PreparedAdapter(adapter, model: model)], uniform: true)
    }

    deinit { scratch.deallocate() }

    public func addDelta(
        layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim K: Int,
        out: UnsafeMutablePointer<Float>, outDim N: Int, batch B: Int, rowsPerSequence T: Int
    ) {
        precondition(
            uniform || perSequence.count == B, "AdapterBatch made for \(perSequence.count) sequences, used with \(B)")
        var b = 0
        while b < B {
            guard let entry = uniform ? perSequence[0] : perSequence[b] else { b += 1; continue }
            var end = b + 1
            while end < B && (uniform || perSequence[end] === entry) { end += 1 }
            apply(
                entry, layer: layer, module: module, inp: inp + b * T * K, K: K, out: out + b * T * N, N: N,
                rows: (end - b) * T)
            b = end
        }
    }

    private func apply(
        _ e: PreparedAdapter, layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, K: Int,
        out: UnsafeMutablePointer<Float>, N: Int, rows: Int
    ) {
        if let slot = e.adapter.layout.slot(layer: layer, module: module) {
            precondition(slot.inFeatures == K && slot.outFeatures == N, "adapter slot shape differs from the model's")
            if capacity < rows * slot.r {
                scratch.deallocate()
                capacity = rows * slot.r
                scratch = .allocate(capacity: capacity)
            }
            loraForward(
                out: out, u: scratch, inp: inp, a: e.adapter.weights.a(slot), b: e.adapter.weights.b(slot),
                scale: slot.scale, M: rows, K: K, N: N, r: slot.r)
        }
        if let delta = e.biasDelta[ProjectionSite(layer: layer, module: module)] {
            delta.withUnsafeBufferPointer { d in
                for m in 0..<rows {
                    let row = out + m * N
                    for n in 0..<N { row[n] += d[n] }
                }
            }
        }
    }
}
