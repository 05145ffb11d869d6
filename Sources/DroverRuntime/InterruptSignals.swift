import DroverCore
import Foundation

/// SIGINT and SIGTERM for a command that stops in two steps: the first signal asks it to wind
/// down, a second one ends it at once. Unchecked: `sources` is written once, in `init`, and
/// dispatch sources are safe to cancel from any thread.
public final class InterruptSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    private let count = Locked<(Int, Int32?)>((0, nil))

    public init(first: @escaping @Sendable (Int32) -> Void, again: @escaping @Sendable (Int32) -> Void) {
        var sources: [any DispatchSourceSignal] = []
        let count = self.count
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let seen = count.withLock { state -> Int in
                    state.0 += 1
                    if state.1 == nil { state.1 = number }
                    return state.0
                }
                seen == 1 ? first(number) : again(number)
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    /// The first signal received, if any.
    public var received: Int32? { count.value.1 }

    public func cancel() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    public static func name(_ signal: Int32) -> String { signal == SIGINT ? "interrupted (Ctrl-C)" : "SIGTERM" }
}
