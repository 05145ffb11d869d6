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

    /// A sink for one turn's deltas; `finish` it when the turn ends.
    public func sink(for session: SessionID) -> DeltaSink {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        if let redis {
            let channel = Self.channel(session)
            Task {
                for await message in stream {
                    _ = try? await redis.send(["PUBLISH", channel, message])
                }
            }
        } else {
            continuation.finish()
        }
        return DeltaSink(continuation: continuation)
    }
}

public struct DeltaSink: Sendable {
    let continuation: AsyncStream<String>.Continuation

    public func send(_ delta: MessageDelta) {
        continuation.yield(delta.json)
    }

    public func finish() { continuation.finish() }
}
