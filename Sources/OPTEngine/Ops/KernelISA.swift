// KernelISA: which instruction set the hand-written kernels (CKernels) use. Chosen once per process: the
// best the CPU has, or MUWA_KERNEL_ISA (avx512, avx2, scalar) when the CPU has it. Within one choice a
// row's matmul output is bit-identical alone and in any batch; across choices results agree to rounding.
import CKernels

enum KernelISA {
    /// Every instruction set the kernels have, best first.
    static let all = ["avx512", "avx2", "scalar"]

    /// The one in use.
    static var current: String { String(cString: muwa_kernel_isa()) }

    /// Those this CPU can run, best first.
    static var supported: [String] { all.filter { muwa_kernel_isa_supported($0) != 0 } }

    /// Switches the kernels to `name` for every later call; false when this CPU cannot run it. Tests and
    /// benches only: never while kernels run on other threads.
    @discardableResult
    static func select(_ name: String) -> Bool { muwa_kernel_select_isa(name) != 0 }
}
