// SignalWatcher: SIGTERM and SIGINT as an async sequence (dispatch signal sources; the default action is
// switched off so the process is not killed). `muwad serve` drains on the first one and exits at once on
// the second; the jobs it was running then come back through lease expiry.
import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

final class SignalWatcher: @unchecked Sendable {
    let signals: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation
    private var sources: [DispatchSourceSignal] = []

    init(_ numbers: [Int32] = [SIGTERM, SIGINT]) {
        (signals, continuation) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .unbounded)
        let queue = DispatchQueue(label: "muwa.signals")
        for number in numbers {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            let continuation = self.continuation
            source.setEventHandler {
                // A coalesced burst still counts once per delivery reported by the kernel.
                for _ in 0..<max(1, Int(source.data)) { continuation.yield(number) }
            }
            source.resume()
            sources.append(source)
        }
    }

    static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        default: return "signal \(number)"
        }
    }
}
