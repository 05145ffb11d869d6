import DroverCore
import DroverRedis
import Logging

/// The recorder's reads on a Redis Cluster. One `XREADGROUP` may not span slots there, and each
/// mirror shard is a slot of its own, so each shard has a reader that blocks on that stream alone
/// (on the master that owns it). What the readers bring in is taken together, so a batch still
/// goes into SQLite in one transaction whichever shards it came from.
///
/// A reader that has delivered a reply waits until it is taken before it reads again: at most
/// one unrecorded reply per shard is held in memory, as on a single server, where the next read
/// runs while a full batch is written.
final class ShardReads: Sendable {
    private struct State {
        var replies: [RedisValue] = []
        /// Readers whose reply waits to be taken.
        var deliverers: [CheckedContinuation<Void, Never>] = []
        var taker: CheckedContinuation<[RedisValue], Error>?
        var closed = false
        /// Shards whose reader is waiting out an outage.
        var down: Set<Int> = []
    }

    private let state = Locked(State())

    /// Hands `reply` over, and returns once it is taken (or the reads are closed).
    func deliver(_ reply: RedisValue) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let taker = state.withLock { state -> CheckedContinuation<[RedisValue], Error>? in
                if state.closed {
                    continuation.resume()
                    return nil
                }
                state.replies.append(reply)
                state.deliverers.append(continuation)
                defer { state.taker = nil }
                return state.taker
            }
            if let taker { taker.resume(returning: takeAll()) }
        }
    }

    /// Waits for at least one reply and returns every reply delivered by then, as one
    /// XREADGROUP-shaped reply. Cancelling the waiting task throws `CancellationError`.
    func take() async throws -> RedisValue {
        let replies: [RedisValue] = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                enum Next { case take, wait, cancelled }
                // Under the lock that the cancellation handler takes too: a cancellation either
                // came before (and shows here) or finds the taker to resume.
                let next = state.withLock { state -> Next in
                    if !state.replies.isEmpty { return .take }
                    if Task.isCancelled { return .cancelled }
                    state.taker = continuation
                    return .wait
                }
                switch next {
                case .take: continuation.resume(returning: takeAll())
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.taker = nil }
                return state.taker
            }?.resume(throwing: CancellationError())
        }
        return .array(replies.flatMap { $0.array ?? [] })
    }

    /// Notes that a shard's reader lost Redis; true for the first of an outage, which alone is
    /// worth a log line (a failover takes out every reader on that master at once).
    func readerDown(_ shard: Int) -> Bool {
        state.withLock { state in
            state.down.insert(shard)
            return state.down.count == 1
        }
    }

    /// Notes that a shard's reader reads again; true when it was the last one down.
    func readerUp(_ shard: Int) -> Bool {
        state.withLock { state in
            guard state.down.remove(shard) != nil else { return false }
            return state.down.isEmpty
        }
    }

    /// Ends the reads: waiting readers go on (and find their task cancelled).
    func close() {
        let waiting = state.withLock { state in
            state.closed = true
            defer { state.deliverers = [] }
            return state.deliverers
        }
        for continuation in waiting { continuation.resume() }
    }

    private func takeAll() -> [RedisValue] {
        let (replies, deliverers) = state.withLock { state in
            defer {
                state.replies = []
                state.deliverers = []
            }
            return (state.replies, state.deliverers)
        }
        for continuation in deliverers { continuation.resume() }
        return replies
    }
}
