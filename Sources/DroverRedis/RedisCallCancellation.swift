import Synchronization

/// Cancellation of one call on a connection slot, requested from any thread (a task's
/// cancellation handler) and seen by the slot's thread before and while the call uses the socket.
final class RedisCallCancellation: Sendable {
    private let requested = Atomic<Bool>(false)

    var isRequested: Bool { requested.load(ordering: .sequentiallyConsistent) }

    func request() { requested.store(true, ordering: .sequentiallyConsistent) }
}
