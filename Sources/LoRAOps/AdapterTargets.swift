// Which projections of an OPT model an adapter config selects, decided as peft's
// `check_target_module_exists` decides it, over the module names of transformers' OPTForCausalLM
// (`model.decoder.layers.N.self_attn.q_proj`, …). Also each target's rank, alpha and scale
// (lora_alpha / r, or lora_alpha / √r with use_rslora; rank_pattern / alpha_pattern as peft's
// `get_pattern_key`). A match on a linear layer the engine cannot adapt (project_in/out, lm_head,
// embeddings) is refused by name.
import Foundation
import OPTEngine

/// One adapted projection: where it is and its LoRA hyperparameters.
public struct AdapterTarget: Sendable, Equatable {
    public var layer: Int
    public var module: ProjectionModule
    public var r: Int
    public var alpha: Double
    public var scale: Float

    /// transformers' module name, e.g. `model.decoder.layers.3.self_attn.q_proj`.
    public var moduleName: String { adapterModuleName(layer: layer, module: module) }
}

/// transformers' name of a projection inside OPTForCausalLM.
public func adapterModuleName(layer: Int, module: ProjectionModule) -> String {
    switch module {
    case .fc1, .fc2: return "model.decoder.layers.\(layer).\(module.rawValue)"
    default: return "model.decoder.layers.\(layer).self_attn.\(module.rawValue)"
    }
}

extension AdapterConfig {
    /// The projections this config adapts in a model of `model`'s shape, in layer order then module order.
    /// Throws when it selects nothing, or selects a module the engine cannot adapt.
    public func targets(for model: OPTConfig, path: String = "adapter_config.json") throws -> [AdapterTarget] {
        var unsupported = ["model.decoder.embed_tokens", "model.decoder.embed_positions", "lm_head"]
        if model.hasProjections { unsupported += ["model.decoder.project_in", "model.decoder.project_out"] }
        let allLinear: Bool
        if case .pattern(let p) = targetModules, p.lowercased() == "all-linear" {
            allLinear = true
        } else {
            allLinear = false
        }
        if !allLinear {
            for name in unsupported where try selects(name) {
                throw LoRAError.unsupported(
                    path: path, option: "target_modules",
                    reason: "it selects \(name); the engine adapts only q_proj, k_proj, "
                        + "v_proj, out_proj, fc1 and fc2")
            }
        } else if model.hasProjections {
            throw LoRAError.unsupported(
                path: path, option: "target_modules",
                reason: "'all-linear' includes project_in/project_out of this model")
        }
        var result: [AdapterTarget] = []
        for layer in 0..<model.numHiddenLayers {
            for module in ProjectionModule.allCases {
                let name = adapterModuleName(layer: layer, module: module)
                guard allLinear ? !(try excluded(name)) : try selects(name) else { continue }
                let r = rankPattern[try patternKey(Array(rankPattern.keys), name) ?? ""] ?? self.r
                let alpha = alphaPattern[try patternKey(Array(alphaPattern.keys), name) ?? ""] ?? loraAlpha
                let scale = useRslora ? alpha / Double(r).squareRoot() : alpha / Double(r)
                result.append(AdapterTarget(layer: layer, module: module, r: r, alpha: alpha, scale: Float(scale)))
            }
        }
        guard !result.isEmpty else {
            throw LoRAError.invalidConfig(path: path, reason: "target_modules selects no projection of this model")
        }
        return result
    }

    /// peft's check_target_module_exists for one module name.
    func selects(_ key: String) throws -> Bool {
        if try excluded(key) { return false }
        switch targetModules {
        case .pattern(let p):
            return try fullMatch(p, key, option: "target_modules")
        case .names(let names):
            guard names.contains(key) || names.contains(where: { key.hasSuffix("." + $0) }) else { return false }
            if names.contains(key) { return true }
            guard let layers = layersToTransform, !layers.isEmpty else { return true }
            guard let index = try layerIndex(key) else { return false }
            return layers.contains(index)
        }
    }

    private func excluded(_ key: String) throws -> Bool {
        switch excludeModules {
        case .none: return false
        case .pattern(let p)?: return try fullMatch(p, key, option: "exclude_modules")
        case .names(let names)?: return names.contains(key) || names.contains(where: { key.hasSuffix("." + $0) })
        }
    }

    /// The first numbered segment after a layers_pattern (or any segment), as peft finds it.
    private func layerIndex(_ key: String) throws -> Int? {
        let patterns =
            (layersPattern ?? []).isEmpty
            ? [#".*?\.[^.]*\.(\d+)\."#]
            : (layersPattern ?? []).map { #"(?:^|.*?\.)"# + $0 + #"\.(\d+)\."# }
        let scalars = Array(key.unicodeScalars)
        for p in patterns {
            if let groups = try compiled(p, option: "layers_pattern").prefixMatch(scalars), groups.count > 1,
                let range = groups[1]
            {
                return Int(String(String.UnicodeScalarView(scalars[range])))
            }
        }
        return nil
    }

    /// peft's get_pattern_key: the first pattern p with re.match(rf"(.*\.)?({p})$", key).
    private func patternKey(_ patterns: [String], _ key: String) throws -> String? {
        for p in patterns.sorted() where try fullMatch(#"(.*\.)?("# + p + ")", key, option: "rank_pattern") {
            return p
        }
        return nil
    }

    /// Python's re.fullmatch(pattern, key), without backtracking (``ModulePattern``).
    private func fullMatch(_ pattern: String, _ key: String, option: String = "target_modules") throws -> Bool {
        try compiled(pattern, option: option).fullMatch(key)
    }

    private func compiled(_ pattern: String, option: String) throws -> ModulePattern {
        do { return try ModulePattern(pattern) } catch let refusal as ModulePattern.Refusal {
            throw LoRAError.invalidConfig(
                path: "adapter_config.json", reason: "\(option) regex '\(pattern.prefix(80))': \(refusal.reason)")
        }
    }
}
