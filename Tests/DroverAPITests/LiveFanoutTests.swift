import DroverCore
import Foundation
import Testing

@testable import DroverAPI

@Suite("Live fan-out")
struct LiveFanoutTests {
    /// A subscriber's task cancelled while an item is broadcast: the cancellation holds the task's
    /// status lock and leaves the fan-out from the stream's onTermination, while the broadcast
    /// yields to that task. Yielding under the fan-out's own lock deadlocked the two, and with
    /// them every cooperative thread of `drover serve` (seen once in CI: an SSE client went away
    /// as its session's event arrived). Before the fix this test hangs.
    @Test("subscribers cancelled during a stream of broadcasts never deadlock the fan-out, and each gets items in order")
    func cancelDuringBroadcast() async throws {
        let fanout = LiveFanout<Int> { _, emit in
            var next = 0
            while !Task.isCancelled {
                emit(next)
                next += 1
                await Task.yield()
            }
        }
        // Keeps the source running between the short-lived subscribers.
        let (anchor, leaveAnchor) = fanout.subscribe("k")
        let watching = Task {
            var last = -1
            for await delivery in anchor {
                guard case .item(let n) = delivery else { continue }
                #expect(n == last + 1, "the anchor got \(n) after \(last)")
                last = n
            }
        }
        for _ in 0..<2_000 {
            let subscriber = Task {
                let (stream, _) = fanout.subscribe("k")
                var seen = 0
                for await delivery in stream {
                    if case .item = delivery { seen += 1 }
                    if seen == 2 { await Task.yield() }
                }
            }
            await Task.yield()
            subscriber.cancel()
            await subscriber.value
        }
        leaveAnchor()
        await watching.value
        #expect(fanout.liveSources == 0)
    }
}
