import DroverCore

/// One live source per key, shared by every subscriber of that key: the source starts with the
/// first subscriber and is cancelled when the last one leaves. A source that fails ends its
/// subscribers with the error; the next subscriber starts a fresh one.
final class LiveFanout<Item: Sendable>: Sendable {
    typealias Source = @Sendable (_ key: String, _ emit: @escaping @Sendable (Item) -> Void) async throws -> Void

    enum Delivery: Sendable {
        case item(Item)
        case failed(any Error)
    }

    private struct Feed {
        /// The subscriber that started it; a cancelled source's late work is told apart by this.
        let generation: UInt64
        var subscribers: [UInt64: AsyncStream<Delivery>.Continuation] = [:]
        /// Items every later subscriber gets first (see `isSticky`).
        var sticky: [Item] = []
        var task: Task<Void, Never>?
    }

    private let source: Source
    private let isSticky: @Sendable (Item) -> Bool
    private let bufferSize: Int
    private let feeds = Locked<[String: Feed]>([:])
    private let nextID = Locked<UInt64>(0)
    /// Held while items are yielded, so that each subscriber gets them in order; `feeds` never
    /// is. A yield may wait for its consumer task's status lock, and a task cancelled under that
    /// lock runs its stream's `onTermination`, which leaves and takes `feeds`: yielding under
    /// `feeds` deadlocked the two, and with them every cooperative thread of the server.
    private let delivery = Locked(())

    /// `isSticky`: items a subscriber that comes later must still see (a feed's start marker).
    /// A subscriber more than `bufferSize` items behind is let go rather than silently missing
    /// some: its stream just ends.
    init(bufferSize: Int = 100_000, isSticky: @escaping @Sendable (Item) -> Bool = { _ in false }, source: @escaping Source) {
        self.source = source
        self.isSticky = isSticky
        self.bufferSize = bufferSize
    }

    /// Keys with a live source now.
    var liveSources: Int { feeds.value.count }

    /// Subscribes to `key`; the stream ends when the source fails or this subscriber is let go,
    /// and `cancel` (or the consuming task's cancellation) leaves.
    func subscribe(_ key: String) -> (stream: AsyncStream<Delivery>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<Delivery>.makeStream(bufferingPolicy: .bufferingOldest(bufferSize))
        let id = nextID.withLock { value -> UInt64 in
            value += 1
            return value
        }
        let isNew = delivery.withLock { _ -> Bool in
            let (sticky, isNew) = feeds.withLock { feeds -> ([Item], Bool) in
                var feed = feeds[key] ?? Feed(generation: id)
                feed.subscribers[id] = continuation
                feeds[key] = feed
                return (feed.sticky, feed.generation == id)
            }
            for item in sticky { continuation.yield(.item(item)) }
            return isNew
        }
        if isNew {
            let task = Task { await self.run(key, generation: id) }
            let current = feeds.withLock { feeds -> Bool in
                guard feeds[key]?.generation == id else { return false }
                feeds[key]?.task = task
                return true
            }
            if !current { task.cancel() }
        }
        continuation.onTermination = { _ in self.leave(key, id) }
        return (stream, { self.leave(key, id) })
    }

    /// Finishing a stream runs its `onTermination`, which leaves again: so never under the lock.
    private func leave(_ key: String, _ id: UInt64) {
        let (subscriber, idle) = feeds.withLock { feeds -> (AsyncStream<Delivery>.Continuation?, Task<Void, Never>?) in
            guard var feed = feeds[key] else { return (nil, nil) }
            let subscriber = feed.subscribers.removeValue(forKey: id)
            // Also when a broadcast already let this subscriber go: the last one out stops the source.
            guard feed.subscribers.isEmpty else {
                feeds[key] = feed
                return (subscriber, nil)
            }
            feeds.removeValue(forKey: key)
            return (subscriber, feed.task)
        }
        subscriber?.finish()
        idle?.cancel()
    }

    private func run(_ key: String, generation: UInt64) async {
        var failure: (any Error)?
        do {
            try await source(key) { item in self.broadcast(key, generation, item) }
        } catch is CancellationError {
        } catch {
            failure = error
        }
        guard !Task.isCancelled else { return }
        let subscribers = feeds.withLock { feeds -> [AsyncStream<Delivery>.Continuation] in
            guard feeds[key]?.generation == generation else { return [] }
            return feeds.removeValue(forKey: key)?.subscribers.values.map { $0 } ?? []
        }
        for subscriber in subscribers {
            if let failure { subscriber.yield(.failed(failure)) }
            subscriber.finish()
        }
    }

    private func broadcast(_ key: String, _ generation: UInt64, _ item: Item) {
        let behind = delivery.withLock { _ -> [UInt64] in
            let subscribers = feeds.withLock { feeds -> [UInt64: AsyncStream<Delivery>.Continuation] in
                guard let feed = feeds[key], feed.generation == generation else { return [:] }
                if isSticky(item) { feeds[key]?.sticky.append(item) }
                return feed.subscribers
            }
            var behind: [UInt64] = []
            for (id, subscriber) in subscribers {
                if case .dropped = subscriber.yield(.item(item)) { behind.append(id) }
            }
            return behind
        }
        for id in behind { leave(key, id) }
    }
}
