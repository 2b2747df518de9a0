// AdapterConfig: peft's adapter_config.json for LoRA, keys verbatim. Read leniently where peft is
// (numbers as int or float, target_modules as a list or a regex string, layers_to_transform as an int
// or a list); every option the engine does not implement is refused by its peft name rather than
// silently ignored. Written back with the key set peft 0.21 writes, so peft loads it unchanged.
import Foundation
import OPTEngine

public struct AdapterConfig: Sendable, Equatable {
    /// `target_modules` / `exclude_modules`: module names matched as peft does (exact or a `.name`
    /// suffix), or one regex that must match the whole module name ("all-linear" is peft's shorthand).
    public enum ModuleSelector: Sendable, Equatable {
        case names([String])
        case pattern(String)
    }

    /// `bias`: which biases the adapter trains and carries ("none", "all", "lora_only").
    public enum Bias: String, Sendable {
        case none, all
        case loraOnly = "lora_only"
    }

    public var r: Int
    public var loraAlpha: Double
    public var loraDropout: Double
    public var targetModules: ModuleSelector
    public var excludeModules: ModuleSelector?
    public var bias: Bias
    public var useRslora: Bool
    /// peft sets this to false for nn.Linear (OPT's projections) with a warning; kept for round trips.
    public var fanInFanOut: Bool
    public var layersToTransform: [Int]?
    public var layersPattern: [String]?
    /// Per-module rank / alpha overrides: regex key → value, matched as peft's `get_pattern_key`.
    public var rankPattern: [String: Int]
    public var alphaPattern: [String: Double]
    public var baseModelNameOrPath: String?
    public var taskType: String?

    public init(
        r: Int, loraAlpha: Double, loraDropout: Double = 0, targetModules: ModuleSelector,
        bias: Bias = .none, useRslora: Bool = false, layersToTransform: [Int]? = nil,
        baseModelNameOrPath: String? = nil
    ) {
        self.r = r
        self.loraAlpha = loraAlpha
        self.loraDropout = loraDropout
        self.targetModules = targetModules
        self.excludeModules = nil
        self.bias = bias
        self.useRslora = useRslora
        self.fanInFanOut = false
        self.layersToTransform = layersToTransform
        self.layersPattern = nil
        self.rankPattern = [:]
        self.alphaPattern = [:]
        self.baseModelNameOrPath = baseModelNameOrPath
        self.taskType = "CAUSAL_LM"
    }

    /// Options whose only accepted value is "off" (null, false, empty): peft features the engine lacks.
    static let refusedWhenSet = [
        "use_dora", "lora_bias", "modules_to_save", "target_parameters", "trainable_token_indices",
        "layer_replication", "use_qalora", "alora_invocation_tokens", "arrow_config", "use_bdlora",
    ]

    /// The largest rank read (`r`, rank_pattern values): above every OPT hidden size (12,288), so any
    /// useful adapter fits, while r = 2^20 or 2^40 from a hostile file is refused before sizes are computed.
    public static let maxRank = 16_384

    /// Reads and validates `directory/adapter_config.json`. Throws ``LoRAError/missingFile(path:)`` when
    /// it is absent, the engine's directory / readability errors (``EngineError``) otherwise.
    public static func load(directory: String) throws -> AdapterConfig {
        try FileAccess.requireDirectory(directory)
        let path = (directory as NSString).appendingPathComponent("adapter_config.json")
        let data: Data
        do { data = try FileAccess.readFile(path, limit: 1 << 20) } catch EngineError.missingFile(let missing) {
            throw LoRAError.missingFile(path: missing)
        }
        return try parse(data, path: path)
    }

    /// Parses adapter_config.json bytes; `path` names the file in errors.
    public static func parse(_ data: Data, path: String) throws -> AdapterConfig {
        func bad(_ reason: String) -> LoRAError { .invalidConfig(path: path, reason: reason) }
        guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
            throw bad("not a JSON object")
        }
        func present(_ key: String) -> Any? {
            guard let v = json[key], !(v is NSNull) else { return nil }
            return v
        }
        func number(_ key: String) throws -> Double? {
            guard let v = present(key) else { return nil }
            guard let n = jsonNumber(v) else { throw bad("'\(key)' must be a number") }
            return n
        }
        func flag(_ key: String) throws -> Bool {
            guard let v = present(key) else { return false }
            guard let b = v as? Bool else { throw bad("'\(key)' must be true or false") }
            return b
        }
        func selector(_ key: String) throws -> ModuleSelector? {
            guard let v = present(key) else { return nil }
            if let s = v as? String { return .pattern(s) }
            if let list = v as? [String] { return .names(list) }
            throw bad("'\(key)' must be a list of module names or a regex string")
        }
        func isSet(_ v: Any) -> Bool {
            if let b = v as? Bool { return b }
            if let a = v as? [Any] { return !a.isEmpty }
            if let d = v as? [String: Any] { return !d.isEmpty }
            if let s = v as? String { return !s.isEmpty }
            return true
        }

        if let type = present("peft_type") as? String, type.uppercased() != "LORA" {
            throw LoRAError.unsupported(
                path: path, option: "peft_type", reason: "'\(type)'; only LORA adapters are read")
        }
        for key in refusedWhenSet {
            if let v = present(key), isSet(v) {
                throw LoRAError.unsupported(path: path, option: key, reason: "the engine applies plain LoRA only")
            }
        }
        guard let rValue = try number("r"), rValue == rValue.rounded(), rValue >= 1 else {
            throw bad("'r' must be a positive integer")
        }
        guard rValue <= Double(maxRank) else { throw bad("'r' must be at most \(maxRank)") }
        guard let targets = try selector("target_modules") else {
            throw bad("'target_modules' is missing")
        }
        var config = AdapterConfig(
            r: Int(rValue), loraAlpha: try number("lora_alpha") ?? 8,
            loraDropout: try number("lora_dropout") ?? 0, targetModules: targets)
        guard config.loraDropout >= 0 && config.loraDropout < 1 else { throw bad("'lora_dropout' must be in [0, 1)") }
        config.excludeModules = try selector("exclude_modules")
        if let b = present("bias") {
            guard let s = b as? String, let bias = Bias(rawValue: s) else {
                throw bad("'bias' must be \"none\", \"all\" or \"lora_only\"")
            }
            config.bias = bias
        }
        config.useRslora = try flag("use_rslora")
        config.fanInFanOut = try flag("fan_in_fan_out")
        if let v = present("layers_to_transform") {
            if let n = v as? Int {
                config.layersToTransform = [n]
            } else if let list = v as? [Int] {
                config.layersToTransform = list
            } else {
                throw bad("'layers_to_transform' must be an integer or a list of integers")
            }
        }
        if let v = present("layers_pattern") {
            if let s = v as? String {
                config.layersPattern = [s]
            } else if let list = v as? [String] {
                config.layersPattern = list
            } else {
                throw bad("'layers_pattern' must be a string or a list of strings")
            }
        }
        if let v = present("rank_pattern") {
            guard let d = v as? [String: Any] else { throw bad("'rank_pattern' must be an object") }
            for (k, value) in d {
                guard let n = jsonNumber(value), n == n.rounded(), n >= 1 else {
                    throw bad("rank_pattern['\(k)'] must be a positive integer")
                }
                guard n <= Double(maxRank) else { throw bad("rank_pattern['\(k)'] must be at most \(maxRank)") }
                config.rankPattern[k] = Int(n)
            }
        }
        if let v = present("alpha_pattern") {
            guard let d = v as? [String: Any] else { throw bad("'alpha_pattern' must be an object") }
            for (k, value) in d {
                guard let n = jsonNumber(value) else { throw bad("alpha_pattern['\(k)'] must be a number") }
                config.alphaPattern[k] = n
            }
        }
        config.baseModelNameOrPath = present("base_model_name_or_path") as? String
        config.taskType = present("task_type") as? String
        return config
    }

    /// adapter_config.json as peft 0.21 writes it (every key, nulls included, keys sorted).
    public func jsonData() throws -> Data {
        func selectorValue(_ s: ModuleSelector?) -> Any {
            switch s {
            case .none: return NSNull()
            case .names(let list)?: return list
            case .pattern(let p)?: return p
            }
        }
        func numberValue(_ x: Double) -> Any { x == x.rounded() && abs(x) < 1e15 ? Int(x) as Any : x as Any }
        let object: [String: Any] = [
            "alpha_pattern": alphaPattern.mapValues(numberValue), "auto_mapping": NSNull(),
            "base_model_name_or_path": baseModelNameOrPath ?? NSNull(), "bias": bias.rawValue,
            "exclude_modules": selectorValue(excludeModules), "fan_in_fan_out": fanInFanOut,
            "inference_mode": true, "init_lora_weights": true,
            "layers_pattern": layersPattern.map { $0.count == 1 ? $0[0] as Any : $0 as Any } ?? NSNull(),
            "layers_to_transform": layersToTransform ?? NSNull() as Any, "loftq_config": [String: Any](),
            "lora_alpha": numberValue(loraAlpha), "lora_bias": false, "lora_dropout": loraDropout,
            "megatron_config": NSNull(), "megatron_core": "megatron.core", "modules_to_save": NSNull(),
            "peft_type": "LORA", "r": r, "rank_pattern": rankPattern, "revision": NSNull(),
            "target_modules": selectorValue(targetModules), "task_type": taskType ?? NSNull(),
            "use_dora": false, "use_rslora": useRslora,
        ]
        return try JSONSerialization.data(
            withJSONObject: object,
            options: [
                .prettyPrinted, .sortedKeys,
                .withoutEscapingSlashes,
            ])
    }
}

/// A JSON number (integer or fraction, not a boolean) as Double. Foundation hands both as NSNumber;
/// booleans are the ones whose objCType is "c".
func jsonNumber(_ v: Any) -> Double? {
    guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
    return n.doubleValue
}
