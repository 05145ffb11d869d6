import DroverCore
import Foundation
import Synchronization

/// One connection that any number of callers share. What they ask for while it waits on
/// replies goes out together in its next write, and the replies come back in order: concurrent
/// callers share one thread wake-up, one write and one read where each used to pay its own, and
/// Redis reads a batch where it read one command.
///
/// A request is retried as the dedicated slots were: one that never reached the server (no
/// connection, `LOADING`) within the reconnect window; one whose connection broke mid-batch only
/// when it is idempotent, because it may have run.
final class RedisSharedConnection: @unchecked Sendable {
    struct Request: Sendable {
        let commands: [[String]]
        /// For EVALSHA: a NOSCRIPT reply loads the script and sends the call again.
        let script: RedisScript?
        let idempotent: Bool
        /// Whether an error reply of a server that cannot serve yet (`LOADING`, `TRYAGAIN`) is
        /// retried, as for single commands, or handed back, as for pipelines.
        let retriesUnready: Bool
        let completion: @Sendable (Result<[RedisValue], RedisError>) -> Void
    }

    let url: RedisURL
    let options: RedisClientOptions
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var pending: [Request] = []
    private var closing = false
    /// Requests submitted and not yet answered, for spreading callers over connections.
    private let outstanding = Atomic<Int>(0)
    /// Only touched on the connection's thread.
    private var connection: RedisConnection?

    init(url: RedisURL, options: RedisClientOptions, name: String) {
        self.url = url
        self.options = options
        startNamedThread(name, stackSize: 1 << 20) { [self] in serveUntilClosed() }
    }

    var load: Int { outstanding.load(ordering: .relaxed) }

    func submit(_ request: Request) {
        condition.lock()
        if closing {
            condition.unlock()
            request.completion(.failure(.closed))
            return
        }
        pending.append(request)
        outstanding.add(1, ordering: .relaxed)
        condition.signal()
        condition.unlock()
    }

    /// Sends `request`'s commands and waits for their replies.
    func perform(
        _ commands: [[String]], script: RedisScript? = nil, idempotent: Bool, retriesUnready: Bool
    ) async throws(RedisError) -> [RedisValue] {
        let result: Result<[RedisValue], RedisError> = await withCheckedContinuation { continuation in
            submit(
                Request(
                    commands: commands, script: script, idempotent: idempotent, retriesUnready: retriesUnready,
                    completion: { continuation.resume(returning: $0) }))
        }
        return try result.get()
    }

    /// Answers what is queued, then ends the thread and closes the connection.
    func close() {
        condition.lock()
        closing = true
        condition.signal()
        condition.unlock()
    }

    private func serveUntilClosed() {
        while true {
            condition.lock()
            while pending.isEmpty && !closing {
                condition.wait()
            }
            if pending.isEmpty {
                condition.unlock()
                connection?.close()
                connection = nil
                return
            }
            let batch = pending
            pending = []
            condition.unlock()
            serve(batch)
            outstanding.subtract(batch.count, ordering: .relaxed)
        }
    }

    /// Sends every request of `batch` in one write and answers each from its replies, retrying
    /// within the reconnect window what may be retried.
    private func serve(_ batch: [Request]) {
        var queue = batch
        var backoff = ReconnectBackoff(options)
        while !queue.isEmpty {
            var retry: [Request] = []
            var failure: RedisError?
            do throws(RedisError) {
                let connection = try currentConnection()
                try connection.queue(queue.flatMap(\.commands))
                let sent = ContinuousClock.now
                var reloads: [Request] = []
                for (index, request) in queue.enumerated() {
                    var replies: [RedisValue] = []
                    replies.reserveCapacity(request.commands.count)
                    do throws(RedisError) {
                        for arguments in request.commands {
                            replies.append(try connection.reply(to: arguments, sentAt: sent))
                        }
                    } catch {
                        // The rest may or may not have run: only what may run twice goes again.
                        dropConnection()
                        let unanswered = queue[index...]
                        // Added to, not replaced: earlier requests of this batch may wait for a retry
                        // already (a LOADING reply).
                        retry += unanswered.filter(\.idempotent)
                        for request in unanswered where !request.idempotent { request.completion(.failure(error)) }
                        failure = error
                        break
                    }
                    if request.script != nil, case .error(let message) = replies.first, message.hasPrefix("NOSCRIPT") {
                        reloads.append(request)
                    } else if request.retriesUnready, case .error(let message) = replies.first, Self.isUnready(message) {
                        retry.append(request)
                        failure = RedisError.server(message)
                    } else {
                        request.completion(.success(replies))
                    }
                }
                // A fresh or restarted server, or SCRIPT FLUSH: load, then call again, one by one.
                // A call refused with NOSCRIPT did not run, so after a break it simply goes again.
                if connection.isOpen {
                    for request in reloads {
                        request.completion(Result { () throws(RedisError) in try reload(request, on: connection) })
                    }
                } else {
                    retry += reloads
                }
            } catch {
                // Nothing was sent (no connection, or the write could not be queued).
                dropConnection()
                failure = error
                for request in queue {
                    let again: Bool
                    switch error {
                    case .connectionFailed: again = true
                    case .connectionLost: again = request.idempotent
                    default: again = false
                    }
                    if again { retry.append(request) } else { request.completion(.failure(error)) }
                }
            }
            queue = retry
            guard !queue.isEmpty else { return }
            guard failure != nil, let wait = backoff.next() else {
                for request in queue { request.completion(.failure(failure ?? .closed)) }
                return
            }
            Thread.sleep(forTimeInterval: wait.seconds)
        }
    }

    private func reload(_ request: Request, on connection: RedisConnection) throws(RedisError) -> [RedisValue] {
        guard let script = request.script, let call = request.commands.first else { throw .closed }
        let loaded = try connection.command(["SCRIPT", "LOAD", script.source])
        if case .error(let loadError) = loaded {
            throw .serverError(code: "ERR", message: "cannot load script \(script.name): \(loadError)")
        }
        return [try connection.command(call)]
    }

    private static func isUnready(_ message: String) -> Bool {
        message.hasPrefix("LOADING") || message.hasPrefix("TRYAGAIN")
    }

    private func currentConnection() throws(RedisError) -> RedisConnection {
        // A connection that is readable while idle was closed by the server (a restart, a kill).
        if let connection, connection.isOpen, !connection.looksStale {
            return connection
        }
        dropConnection()
        let fresh = try RedisConnection.open(url, connectTimeout: options.connectTimeout, commandTimeout: options.commandTimeout)
        connection = fresh
        return fresh
    }

    private func dropConnection() {
        connection?.close()
        connection = nil
    }
}
