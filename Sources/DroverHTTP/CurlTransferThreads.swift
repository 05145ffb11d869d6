import CCurl
import DroverCore
import Foundation
import Synchronization

/// The threads curl transfers block on, each with a handle it keeps: a finished thread waits for
/// the next transfer (up to `idleLimit` of them wait; the rest end), so neither a thread nor a
/// connection is made per request. A transfer never waits for a thread: with none idle, a new
/// one starts.
final class CurlTransferThreads: Sendable {
    /// Runs a transfer on the thread's handle and returns what ends it for its consumer, which
    /// the thread calls once it is free for the next.
    typealias Job = @Sendable (UnsafeMutableRawPointer?) -> @Sendable () -> Void

    private let idleLimit: Int
    private let idle = Mutex<[CurlTransferThread]>([])

    init(idleLimit: Int) {
        self.idleLimit = max(0, idleLimit)
    }

    /// A client that goes away lets its waiting threads end, with their handles.
    deinit {
        for thread in idle.withLock({ $0 }) { thread.end() }
    }

    func run(_ job: @escaping Job) {
        if let waiting = idle.withLock({ $0.popLast() }) {
            waiting.hand(job)
            return
        }
        let thread = CurlTransferThread(first: job, pool: self)
        thread.start()
    }

    /// A thread whose transfer is done: true if it is to wait for another, false if it ends.
    fileprivate func park(_ thread: CurlTransferThread) -> Bool {
        idle.withLock { threads in
            guard threads.count < idleLimit else { return false }
            threads.append(thread)
            return true
        }
    }
}

private final class CurlTransferThread: @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var next: CurlTransferThreads.Job?
    private var ended = false
    private weak var pool: CurlTransferThreads?
    private let handle = curl_easy_init()

    init(first: @escaping CurlTransferThreads.Job, pool: CurlTransferThreads) {
        self.next = first
        self.pool = pool
    }

    func start() {
        startNamedThread("drover-curl", stackSize: 512 << 10) { self.loop() }
    }

    func hand(_ job: @escaping CurlTransferThreads.Job) {
        condition.lock()
        next = job
        condition.signal()
        condition.unlock()
    }

    func end() {
        condition.lock()
        ended = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        defer { if let handle { curl_easy_cleanup(handle) } }
        while true {
            condition.lock()
            while next == nil && !ended { condition.wait() }
            guard let job = next else {
                condition.unlock()
                return
            }
            next = nil
            condition.unlock()
            let finish = job(handle)
            // Parked, the thread is handed its next job by `run`; not parked, it ends.
            guard let pool, pool.park(self) else {
                finish()
                return
            }
            finish()
        }
    }
}
