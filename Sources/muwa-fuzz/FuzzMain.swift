// muwa-fuzz: the fuzz targets (Sources/FuzzTargets) as a program.
//
// Normal build (`swift build`): replays inputs without a fuzzer, so any machine can check a crash file:
//   muwa-fuzz --list                      the targets and what their inputs stand for
//   muwa-fuzz TARGET FILE|DIR…            runs every file (directories recursively) through TARGET
//
// Fuzz build (`-D FUZZING`, `-sanitize=fuzzer,address`; scripts/fuzz.sh builds it into .build-fuzz):
// libFuzzer's driver with the target named by MUWA_FUZZ_TARGET; arguments are libFuzzer's.
//   MUWA_FUZZ_TARGET=tokenizer muwa-fuzz fuzz/corpus/tokenizer -max_total_time=60
// SwiftPM links an executable's entry point itself, so main() calls LLVMFuzzerRunDriver (libFuzzer's
// documented driver entry) rather than leaving `main` to libFuzzer.
import FuzzTargets
import Foundation

#if FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The target chosen at start-up (libFuzzer calls the callback on this thread only).
    nonisolated(unsafe) var fuzzTarget = FuzzTarget.payload

    /// libFuzzer's per-input callback.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
        FuzzTarget.run(fuzzTarget, data: bytes)
        return 0
    }
#endif

@main
struct MuwaFuzz {
    static func main() {
        #if FUZZING
            let name = ProcessInfo.processInfo.environment["MUWA_FUZZ_TARGET"] ?? ""
            guard let target = FuzzTarget(rawValue: name) else {
                fail(
                    "MUWA_FUZZ_TARGET must name a target: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            fuzzTarget = target
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput))
        #else
            replay(Array(CommandLine.arguments.dropFirst()))
        #endif
    }

    static func replay(_ arguments: [String]) {
        if arguments.first == "--list" {
            for target in FuzzTarget.allCases { print("\(target.rawValue): \(target.summary)") }
            return
        }
        guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[0]) else {
            fail(
                "usage: muwa-fuzz --list | muwa-fuzz TARGET FILE|DIR…  (targets: "
                    + FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        var count = 0
        for path in arguments.dropFirst() {
            for file in files(under: path) {
                guard let data = FileManager.default.contents(atPath: file) else { fail("\(file): not readable") }
                FuzzTarget.run(target, data: [UInt8](data))
                count += 1
            }
        }
        print("muwa-fuzz: \(count) input\(count == 1 ? "" : "s") replayed through \(target.rawValue), no crash")
    }

    /// `path` itself, or every regular file below it in name order.
    static func files(under path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            fail("\(path): no such file")
        }
        guard isDirectory.boolValue else { return [path] }
        let names = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
        return names.sorted().map { (path as NSString).appendingPathComponent($0) }.filter {
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &dir) && !dir.boolValue
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("muwa-fuzz: \(message)\n".utf8))
        exit(2)
    }
}
