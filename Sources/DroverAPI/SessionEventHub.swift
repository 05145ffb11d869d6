import DroverBrain
import DroverCore
import DroverRedis
import DroverSessionLog
import Foundation
import Logging

/// The live parts of event streams, shared per session in one API process: one tail of the
/// session's log, and one subscription to its message deltas, however many streams are open
/// on it. Each holds a blocking Redis connection, and with it a thread, so 200 dashboards
/// watching one grading session cost two connections, not 400.
///
/// A stream replays what it asked for with plain reads, then follows the shared tail: the tail
/// first says from which sequence number on it delivers everything (`ready`), the stream
/// replays at least that far, and from then on takes live events past its replay.
final class SessionEventHub: Sendable {
    static let logger = Logger(label: "drover.api.events")
    enum LogItem: Sendable {
        /// The tail delivers every event after this sequence number.
        case ready(Int64)
        case event(StoredEvent)
    }

    /// A stream whose live part ended before it stopped reading: it fell too far behind.
    struct FellBehind: Error, CustomStringConvertible {
        var description: String { "this stream fell too far behind the session's log. Fix: reconnect with Last-Event-ID" }
    }

    private let log: SessionLog
    private let tails: LiveFanout<LogItem>
    private let deltaSubscriptions: LiveFanout<String>

    init(log: SessionLog, redis: RedisClient) {
        self.log = log
        tails = LiveFanout(isSticky: { if case .ready = $0 { true } else { false } }) { key, emit in
            let session = try SessionID(key)
            let start = try await log.lastSeq(session)
            emit(.ready(start))
            for try await event in log.tail(session, afterSeq: start) { emit(.event(event)) }
        }
        deltaSubscriptions = LiveFanout { key, emit in
            let connection = redis.blockingConnection(name: "deltas")
            defer { connection.close() }
            let channel = DeltaPublisher.channel(try SessionID(key))
            // Previews are best effort: after an outage the subscription is simply made again.
            var outage = RedisOutage("a delta subscription")
            var subscribed = false
            while !Task.isCancelled {
                do {
                    if !subscribed {
                        try await connection.send(["SUBSCRIBE", channel])
                        subscribed = true
                    }
                    let message = try await connection.receive()
                    outage.recovered(logger: SessionEventHub.logger)
                    guard let parts = message.array, parts.count == 3, parts[0].string == "message", let payload = parts[2].string else { continue }
                    emit(payload)
                } catch  where RedisOutage.isOutage(error) && !Task.isCancelled {
                    subscribed = false
                    try await outage.wait(after: error, logger: SessionEventHub.logger)
                }
            }
        }
    }

    /// Sessions with a live tail now.
    var liveTails: Int { tails.liveSources }
    /// Sessions with a live delta subscription now.
    var liveDeltaSubscriptions: Int { deltaSubscriptions.liveSources }

    /// Every event after `start`, then new ones as they are appended, until the consumer stops.
    func events(_ session: SessionID, after start: Int64) -> AsyncThrowingStream<StoredEvent, Error> {
        let (live, leave) = tails.subscribe(session.rawValue)
        let (output, continuation) = AsyncThrowingStream<StoredEvent, Error>.makeStream()
        let log = self.log
        let task = Task {
            defer { leave() }
            do {
                var last = start
                var replayed = false
                for await delivery in live {
                    switch delivery {
                    case .item(.ready):
                        guard !replayed else { continue }
                        // Everything up to where the tail starts, and more if it is there already.
                        last = try await log.replay(session, afterSeq: last) { continuation.yield($0) }
                        replayed = true
                    case .item(.event(let event)):
                        guard replayed, event.seq > last else { continue }
                        continuation.yield(event)
                        last = event.seq
                    case .failed(let error):
                        throw error
                    }
                }
                try Task.checkCancellation()
                throw FellBehind()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return output
    }

    /// The brain's delta messages (JSON) for the session, from now on.
    func deltas(_ session: SessionID) -> AsyncThrowingStream<String, Error> {
        let (live, leave) = deltaSubscriptions.subscribe(session.rawValue)
        let (output, continuation) = AsyncThrowingStream<String, Error>.makeStream()
        let task = Task {
            defer { leave() }
            for await delivery in live {
                switch delivery {
                case .item(let payload): continuation.yield(payload)
                case .failed(let error): return continuation.finish(throwing: error)
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return output
    }
}
