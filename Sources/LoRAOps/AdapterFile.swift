// Adapter directories in peft's format: adapter_config.json plus adapter_model.safetensors (or a
// torch-pickled adapter_model.bin), tensors named as peft names them:
//   base_model.model.model.decoder.layers.N.self_attn.q_proj.lora_A.weight        (peft ≥ 0.3 saves)
//   base_model.model.model.decoder.layers.N.self_attn.q_proj.lora_A.default.weight (with an adapter name)
//   …q_proj.base_layer.bias / …k_proj.bias / …self_attn_layer_norm.bias            (bias lora_only / all)
// Loading checks every tensor against the config and the model; saving writes what peft writes.
import Foundation
import OPTEngine

extension LoRAAdapter {
    public static let weightFiles = ["adapter_model.safetensors", "adapter_model.bin"]

    /// Loads the adapter in `directory` for a model of shape `model`. Throws
    /// ``EngineError/overMemoryBudget(what:estimate:limit:)`` when its parameters (4 bytes each) exceed
    /// `memoryBudget`, before anything is allocated.
    public static func load(directory: String, model: OPTConfig, memoryBudget: MemoryBudget = .unlimited) throws
        -> LoRAAdapter
    {
        let configPath = (directory as NSString).appendingPathComponent("adapter_config.json")
        let config = try AdapterConfig.load(directory: directory)
        let targets = try config.targets(for: model, path: configPath)
        let bytes =
            LoRALayout.checkedParameterCount(targets: targets, model: model)
            .flatMap { $0.multipliedReportingOverflow(by: 4).overflow ? nil : $0 * 4 } ?? .max
        try memoryBudget.check(
            bytes,
            for: "adapter \(directory) (\(targets.count) projections, r up to "
                + "\(targets.map(\.r).max() ?? 0))")
        let layout = LoRALayout(targets: targets, model: model)

        guard
            let file = weightFiles.map({ (directory as NSString).appendingPathComponent($0) })
                .first(where: { FileManager.default.fileExists(atPath: $0) })
        else {
            throw LoRAError.missingFile(
                path: weightFiles.map { (directory as NSString).appendingPathComponent($0) }
                    .joined(separator: " or "))
        }
        let tensors =
            file.hasSuffix(".bin") ? try TorchZipFile(path: file).tensors : try SafetensorsFile(path: file).tensors
        func mismatch(_ reason: String) -> LoRAError { .tensorMismatch(path: file, reason: reason) }

        var sites: [String: ProjectionSite] = [:]
        for l in 0..<model.numHiddenLayers {
            for m in ProjectionModule.allCases {
                sites[adapterModuleName(layer: l, module: m)] = ProjectionSite(layer: l, module: m)
            }
        }
        var layerNorms = Set(["final_layer_norm"])
        for l in 0..<model.numHiddenLayers {
            layerNorms.insert("layers.\(l).self_attn_layer_norm")
            layerNorms.insert("layers.\(l).final_layer_norm")
        }

        let weights = FloatArena(count: layout.count)
        var filled = Set<String>()
        var biases = AdapterBiases()
        var adapterName: String??
        for (key, tensor) in tensors {
            guard let parsed = AdapterKey(key) else { throw mismatch("unexpected tensor '\(key)'") }
            guard [.f32, .f16, .bf16].contains(tensor.dtype) else {
                throw mismatch("tensor '\(key)' has dtype \(tensor.dtype.rawValue); expected F32, F16 or BF16")
            }
            switch parsed.kind {
            case .loraA, .loraB:
                if let seen = adapterName, seen != parsed.adapterName {
                    throw mismatch(
                        "tensors of two adapters ('\(seen ?? "")', '\(parsed.adapterName ?? "")') in one file")
                }
                adapterName = .some(parsed.adapterName)
                guard let site = sites[parsed.module], let slot = layout.slot(layer: site.layer, module: site.module)
                else {
                    throw mismatch("tensor '\(key)' belongs to a module target_modules does not select")
                }
                let isA = parsed.kind == .loraA
                let shape = isA ? [slot.r, slot.inFeatures] : [slot.outFeatures, slot.r]
                guard tensor.shape == shape else {
                    throw mismatch("tensor '\(key)' has shape \(tensor.shape), expected \(shape) (r = \(slot.r))")
                }
                tensor.convertToFloat(start: 0, count: tensor.count, into: isA ? weights.a(slot) : weights.b(slot))
                filled.insert(parsed.module + (isA ? ".A" : ".B"))
            case .bias:
                guard config.bias != .none else {
                    throw mismatch("tensor '\(key)' is a bias but adapter_config.json has bias \"none\"")
                }
                if let site = sites[parsed.module] {
                    let n = LoRALayout.shape(site.module, model).N
                    guard tensor.shape == [n] else {
                        throw mismatch("tensor '\(key)' has shape \(tensor.shape), expected [\(n)]")
                    }
                    biases.projections[site] = tensor.toFloatArray()
                } else if parsed.module.hasPrefix("model.decoder."),
                    layerNorms.contains(String(parsed.module.dropFirst("model.decoder.".count)))
                {
                    guard tensor.shape == [model.hiddenSize] else {
                        throw mismatch("tensor '\(key)' has shape \(tensor.shape), expected [\(model.hiddenSize)]")
                    }
                    biases.layerNorms[String(parsed.module.dropFirst("model.decoder.".count))] = tensor.toFloatArray()
                } else {
                    throw mismatch("bias '\(key)' belongs to no projection or layer norm of this model")
                }
            }
        }
        for slot in layout.slots {
            let name = adapterModuleName(layer: slot.layer, module: slot.module)
            for part in ["A", "B"] where !filled.contains(name + "." + part) {
                throw mismatch("missing tensor 'base_model.model.\(name).lora_\(part).weight'")
            }
        }
        return LoRAAdapter(
            config: config, layout: layout, weights: weights, biases: biases, modelConfig: model,
            source: directory)
    }

    /// Writes adapter_config.json and adapter_model.safetensors to `directory` (created if needed) as
    /// peft's save_pretrained does: F32 tensors without the adapter name, metadata {"format": "pt"}.
    public func save(directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw LoRAError.missingFile(path: directory)
        }
        var tensors: [(name: String, tensor: Tensor)] = []
        for slot in layout.slots {
            let name = "base_model.model." + adapterModuleName(layer: slot.layer, module: slot.module)
            func copy(_ p: UnsafePointer<Float>, _ n: Int) -> [Float] { Array(UnsafeBufferPointer(start: p, count: n)) }
            let a = Tensor.f32(copy(weights.a(slot), slot.aCount), shape: [slot.r, slot.inFeatures])
            let b = Tensor.f32(copy(weights.b(slot), slot.bCount), shape: [slot.outFeatures, slot.r])
            tensors += [(name + ".lora_A.weight", a), (name + ".lora_B.weight", b)]
        }
        for (site, bias) in biases.projections {
            let name = "base_model.model." + adapterModuleName(layer: site.layer, module: site.module)
            let adapted = layout.slot(layer: site.layer, module: site.module) != nil
            tensors.append((name + (adapted ? ".base_layer.bias" : ".bias"), Tensor.f32(bias, shape: [bias.count])))
        }
        for (name, bias) in biases.layerNorms {
            tensors.append(("base_model.model.model.decoder." + name + ".bias", Tensor.f32(bias, shape: [bias.count])))
        }
        try SafetensorsFile.write(
            path: (directory as NSString).appendingPathComponent("adapter_model.safetensors"),
            tensors: tensors, metadata: ["format": "pt"])
        let configPath = (directory as NSString).appendingPathComponent("adapter_config.json")
        var data = try config.jsonData()
        data.append(0x0A)
        do { try data.write(to: URL(fileURLWithPath: configPath), options: .atomic) } catch {
            throw LoRAError.missingFile(path: configPath)
        }
    }
}

/// A peft tensor name taken apart: module, what it is, and the adapter-name segment if any.
struct AdapterKey {
    enum Kind { case loraA, loraB, bias }
    var module: String
    var kind: Kind
    var adapterName: String?

    init?(_ key: String) {
        var name = Substring(key)
        if name.hasPrefix("base_model.model.") { name = name.dropFirst("base_model.model.".count) }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if let i = parts.firstIndex(where: { $0 == "lora_A" || $0 == "lora_B" }) {
            let rest = parts[(i + 1)...]
            guard i > 0, rest.last == "weight", rest.count == 1 || rest.count == 2 else { return nil }
            module = parts[..<i].joined(separator: ".")
            kind = parts[i] == "lora_A" ? .loraA : .loraB
            adapterName = rest.count == 2 ? rest.first : nil
        } else if parts.count >= 2, parts.last == "bias" {
            var body = parts.dropLast()
            if body.last == "base_layer" { body = body.dropLast() }
            module = body.joined(separator: ".")
            kind = .bias
            adapterName = nil
        } else {
            return nil
        }
    }
}
