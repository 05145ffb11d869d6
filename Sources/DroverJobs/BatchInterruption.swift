import DroverCore
import Foundation

/// A request to stop a batch run without failing anything: no new item starts, running items
/// get until the drain deadline to finish, and whatever is still running then is left pending,
/// its session and attempts kept, for the next run to continue.
public final class BatchInterruption: Sendable {
    private struct State {
        var drainDeadline: ContinuousClock.Instant?
        var abandoned = false
        var cancelled = false
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Locked(State())

    public init() {}

    /// The first request counts; a later one does not move the deadline.
    public func request(drain: Duration) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.drainDeadline == nil else { return [] }
            state.drainDeadline = .now + drain
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    public var isRequested: Bool { state.value.drainDeadline != nil }

    /// `drover batch cancel`: stop at once, and what is unfinished is cancelled, not pending.
    public func cancel() {
        state.withLock { $0.cancelled = true }
        request(drain: .zero)
    }

    public var isCancelled: Bool { state.value.cancelled }

    /// The run is about to end at once (a second Ctrl-C): from now on nothing is recorded, so
    /// the errors its shutdown causes in running items are never taken for their results.
    public func abandon() {
        state.withLock { $0.abandoned = true }
    }

    public var isAbandoned: Bool { state.value.abandoned }

    /// Returns once an interruption was requested and its drain time has run out; at once if
    /// the calling task is cancelled.
    func drainEnded() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let waiting = state.withLock { state -> Bool in
                    guard state.drainDeadline == nil, !Task.isCancelled else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
        guard let deadline = state.value.drainDeadline else { return }
        try? await Task.sleep(until: deadline)
    }
}
