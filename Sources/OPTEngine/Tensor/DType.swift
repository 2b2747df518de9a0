// DType: how a tensor's elements are stored. Weights stay in their stored dtype; kernels convert
// to Float32 as they read (see Ops/Matmul.swift), so BF16/F16 checkpoints are never widened whole.

public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i8 = "I8"  // int8 with per-output-channel scales (reserved for quantized weights)
    case i64 = "I64"  // only seen in checkpoints (e.g. position ids), never used by kernels

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .i8: return 1
        case .i64: return 8
        }
    }
}

// MARK: - scalar conversions (reference versions; loops over whole rows are in Tensor+Convert)

@inline(__always)
func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Round-to-nearest-even Float32 → BF16, as PyTorch does (NaN stays NaN).
@inline(__always)
func floatToBF16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounding = ((bits >> 16) & 1) &+ 0x7FFF
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

@inline(__always)
func f16ToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

@inline(__always)
func floatToF16(_ value: Float) -> UInt16 {
    Float16(value).bitPattern
}
