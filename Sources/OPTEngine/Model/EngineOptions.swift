// EngineOptions: how a loaded model computes and keeps its weights — the one place the CLI (`--compute`,
// `--weights`, `--int8-threshold`), a job's payload (`compute`, `weights`, `int8_threshold`), the daemon's
// default (MUWA_COMPUTE) and `muwad bench` say "bf16" or "int8". A model is loaded for one EngineOptions;
// the model cache keys on it.
//   compute  f32   exact: every product in f32 (the parity tests' path)
//            bf16  matmuls on bf16 inputs and weights with f32 accumulation (avx512_bf16 where the CPU has it),
//                  attention's products in prefill and training included (as autocast's); norms, softmax,
//                  residuals, LoRA parameters and optimizer state stay f32
//            auto  bf16 where the CPU has avx512_bf16, else f32 (the product default); with int8 weights on a
//                  CPU without it, the int8 base's input gradients in training still take the integer product
//                  where one runs (AVX2: int16 gradients; WeightPreparation.swift)
//  weights   stored  as the checkpoint has them (F32, F16 or BF16; bf16 compute narrows F32/F16 at load)
//            int8    quantized at load: per-output-channel absmax int8; with int8_threshold > 0 (default 6.0),
//                    LLM.int8: input columns whose activations exceed the threshold go through higher precision
import CKernels

public enum ComputeSetting: String, Sendable, CaseIterable, Hashable {
    case f32, bf16, auto
}

/// What `auto` resolved to on this CPU.
public enum ComputePrecision: String, Sendable, Hashable {
    case f32, bf16
}

public enum WeightSetting: String, Sendable, CaseIterable, Hashable {
    case stored, int8
}

public struct EngineOptions: Sendable, Hashable, CustomStringConvertible {
    public var compute: ComputeSetting
    public var weights: WeightSetting
    /// LLM.int8's outlier threshold on |activation| (bitsandbytes' llm_int8_threshold); 0 = plain absmax int8.
    public var int8Threshold: Float

    public init(compute: ComputeSetting = .f32, weights: WeightSetting = .stored, int8Threshold: Float = 6.0) {
        self.compute = compute
        self.weights = weights
        self.int8Threshold = int8Threshold
    }

    /// Every product in f32 on the stored weights: what the engine API defaults to and the parity tests use.
    public static let exact = EngineOptions()
    /// The product default (CLI, payloads, daemon): the fastest the CPU has.
    public static let product = EngineOptions(compute: .auto)

    /// True when this CPU (and build) has bf16 dot products (avx512_bf16).
    static var cpuHasBF16: Bool { muwa_cpu_has_bf16() != 0 }

    /// `compute` with `auto` resolved for this CPU.
    public var precision: ComputePrecision {
        switch compute {
        case .f32: return .f32
        case .bf16: return .bf16
        case .auto: return Self.cpuHasBF16 ? .bf16 : .f32
        }
    }

    public var description: String {
        var s = "compute \(compute.rawValue)"
        if compute == .auto { s += " (\(precision.rawValue))" }
        if weights == .int8 { s += ", weights int8" + (int8Threshold > 0 ? " (threshold \(int8Threshold))" : "") }
        return s
    }

    /// Parses the textual settings (CLI flags, payload keys, MUWA_COMPUTE); a nil keeps `base`'s value. The
    /// error names the setting and the values it takes.
    public static func parse(
        compute: String?, weights: String?, int8Threshold: Double?,
        base: EngineOptions = .product
    ) throws -> EngineOptions {
        var o = base
        if let compute {
            guard let c = ComputeSetting(rawValue: compute.lowercased()) else {
                throw EngineError.invalidRequest("compute must be f32, bf16 or auto, got \"\(compute)\"")
            }
            o.compute = c
        }
        if let weights {
            guard let w = WeightSetting(rawValue: weights.lowercased()) else {
                throw EngineError.invalidRequest("weights must be stored or int8, got \"\(weights)\"")
            }
            o.weights = w
        }
        if let int8Threshold {
            guard int8Threshold.isFinite, (0...1e6).contains(int8Threshold) else {
                throw EngineError.invalidRequest("int8_threshold must be a number in 0…1e6, got \(int8Threshold)")
            }
            o.int8Threshold = Float(int8Threshold)
        }
        return o
    }
}
