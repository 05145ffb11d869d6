import DroverCore
import DroverRedis
import Foundation

/// Publishes streamed deltas on Redis pub/sub (`drover:deltas:SESSION`), in order, so that the
/// API can preview a message before it is final. Best effort: the log is the truth.
public struct DeltaPublisher: Sendable {
    public let redis: RedisClient?

    public init(redis: RedisClient?) {
        self.redis = redis
    }

    public static func channel(_ session: SessionID) -> String { "drover:deltas:\(session.rawValue)" }

    /// A sink for one turn's deltas; `finish` it when the turn ends. What arrives while a
    /// publication is on its way goes out together in the next, in one round trip: a model
    /// streams faster than one PUBLISH after another.
    public func sink(for session: SessionID) -> DeltaSink {
        let sink = DeltaSink()
        if let redis {
            let channel = Self.channel(session)
            Task {
                func publishPending() async {
                    let batch = sink.take()
                    if !batch.isEmpty { _ = try? await redis.pipeline(batch.map { ["PUBLISH", channel, $0] }, idempotent: false) }
                }
                for await _ in sink.wakes { await publishPending() }
                // What came between the last wake and `finish`.
                await publishPending()
            }
        } else {
            sink.finish()
        }
        return sink
    }
}

public final class DeltaSink: Sendable {
    /// At most this many wait; beyond it the oldest go (a preview, not the log).
    static let limit = 4096
    private let pending = Locked<[String]>([])
    let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func send(_ delta: MessageDelta) {
        let json = delta.json
        pending.withLock { queue in
            queue.append(json)
            if queue.count > Self.limit { queue.removeFirst(queue.count - Self.limit) }
        }
        wake.yield()
    }

    func take() -> [String] {
        pending.withLock { queue in
            defer { queue = [] }
            return queue
        }
    }

    public func finish() { wake.finish() }
}
