// KernelISA: which instruction set the hand-written kernels (CKernels) use. Chosen once per process: the
// best the CPU has, or MUWA_KERNEL_ISA (avx512, avx2, scalar) when the CPU has it. With the avx512 table the
// many-row GEMMs run on AMX tiles where the CPU has them (MUWA_AMX=0 keeps them on AVX-512). Within one choice a
// row's matmul output is bit-identical alone and in any batch; across choices results agree to rounding.
import CKernels

public enum KernelISA {
    /// Every instruction set the kernels have, best first.
    static let all = ["avx512", "avx2", "scalar"]

    /// The one in use.
    public static var current: String { String(cString: muwa_kernel_isa()) }

    /// Whether the many-row int8 and bf16 GEMMs use AMX tiles (kernels_amx.c): on CPUs that have them, with the
    /// avx512 table, unless MUWA_AMX=0.
    public static var amx: Bool { muwa_amx_enabled() != 0 && current == "avx512" }

    /// Whether the bf16 GEMM (where AMX does not run it) sums with f32 FMAs rather than vdpbf16ps
    /// (kernels_bf16_gemm_fma.c: the default on Intel CPUs; MUWA_BF16_GEMM=fma|dpbf16 overrides).
    public static var bf16GemmOnFMA: Bool {
        !amx && muwa_bf16_gemm_fma_enabled() != 0 && muwa_cpu_has_bf16() != 0 && current == "avx512"
    }

    /// The width (16 or 8) of an int8 base's input gradients in training (bf16 compute, or auto without bf16)
    /// when they go through integer products, else nil (kernels_int8_backward.c: VNNI int8 by default; AVX2 int16 where no bf16 GEMM runs; MUWA_I8_BACKWARD=int16|int8|bf16).
    public static var int8GradientBits: Int? {
        let bits = Int(muwa_i8_backward_bits())
        return bits == 0 ? nil : bits
    }

    /// What benches print: the table, and AMX where it runs or the bf16 GEMM's FMA kernel where that runs, and
    /// the integer products for int8 gradients where those run.
    public static var summary: String {
        let base = amx ? "\(current) + AMX" : bf16GemmOnFMA ? "\(current), bf16 GEMM on FMAs" : current
        let kernel = String(cString: muwa_i8_backward_kernel())
        return int8GradientBits.map { base + ", int8 gradients on int\($0) \(kernel)" } ?? base
    }

    /// Those this CPU can run, best first.
    static var supported: [String] { all.filter { muwa_kernel_isa_supported($0) != 0 } }

    /// Switches the kernels to `name` for every later call; false when this CPU cannot run it. Tests and
    /// benches only: never while kernels run on other threads.
    @discardableResult
    static func select(_ name: String) -> Bool { muwa_kernel_select_isa(name) != 0 }
}
