import CHiredis
import DroverCore
import Foundation

/// A blocking connection to one Redis server over hiredis. Not thread-safe: one thread owns it.
final class RedisConnection {
    let url: RedisURL
    private var context: UnsafeMutablePointer<redisContext>?

    /// The socket, for `shutdown(2)` from another thread to break a blocking read.
    private(set) var fileDescriptor: Int32 = -1

    private init(url: RedisURL) {
        self.url = url
    }

    deinit {
        close()
    }

    /// Connects, authenticates and selects the database.
    /// The name every connection of this process gives itself (`CLIENT SETNAME`), so that an
    /// embedded server's owner can tell its own connections from other processes'.
    static let processClientName = "drover-\(getpid())"

    /// hiredis writes with write(2), so a write to a socket the server already closed (a Redis
    /// restart racing a command) raises SIGPIPE, whose default action kills the process. Ignored
    /// once, process-wide, the write fails with EPIPE instead and becomes a reconnect.
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    static func open(_ url: RedisURL, connectTimeout: Duration, commandTimeout: Duration?) throws(RedisError) -> RedisConnection {
        _ = ignoreSIGPIPE
        let connection = RedisConnection(url: url)
        let timeout = timeval(duration: connectTimeout)
        let context: UnsafeMutablePointer<redisContext>?
        switch url.endpoint {
        case .tcp(let host, let port):
            context = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path):
            context = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let context else {
            throw .connectionFailed(endpoint: url.description, reason: "out of memory")
        }
        connection.context = context
        if context.pointee.err != 0 {
            let reason = connection.contextError
            connection.close()
            throw .connectionFailed(endpoint: url.description, reason: reason)
        }
        connection.fileDescriptor = context.pointee.fd
        // hiredis opens its socket without close-on-exec. Spawn closes it in every child anyway;
        // this keeps a child started by anything else (a library, a future caller) from holding
        // a raw line to the control plane.
        Spawn.setCloseOnExec(context.pointee.fd)
        if url.endpoint.isTCP {
            _ = redisEnableKeepAlive(context)
        }
        try connection.setCommandTimeout(commandTimeout)

        if let password = url.password {
            var auth = ["AUTH"]
            if let username = url.username { auth.append(username) }
            auth.append(password)
            let reply = try connection.command(auth)
            if case .error(let message) = reply {
                connection.close()
                throw .authenticationFailed(endpoint: url.description, reply: message)
            }
        }
        _ = try connection.command(["CLIENT", "SETNAME", processClientName])
        if url.database != 0 {
            let reply = try connection.command(["SELECT", String(url.database)])
            if case .error(let message) = reply {
                connection.close()
                throw .serverError(code: "ERR", message: "SELECT \(url.database) failed: \(message)")
            }
        }
        return connection
    }

    var isOpen: Bool { context != nil }

    func close() {
        if let context {
            redisFree(context)
            self.context = nil
            fileDescriptor = -1
        }
    }

    /// `nil` waits forever, for blocking commands.
    func setCommandTimeout(_ timeout: Duration?) throws(RedisError) {
        guard let context else { throw .closed }
        let tv = timeout.map(timeval.init(duration:)) ?? timeval(tv_sec: 0, tv_usec: 0)
        if redisSetTimeout(context, tv) != REDIS_OK {
            throw .connectionFailed(endpoint: url.description, reason: "cannot set the socket timeout")
        }
    }

    /// True when the server has closed an idle connection (or sent something unasked): the socket
    /// reads as ready although no reply is due. Checked before reuse, so a restart of Redis is
    /// noticed before a command is sent rather than after.
    /// Whether a fresh connection to `url` answers PING, within the given timeouts. Blocks.
    static func answersPing(_ url: RedisURL, connectTimeout: Duration, commandTimeout: Duration) -> Bool {
        guard let connection = try? open(url, connectTimeout: connectTimeout, commandTimeout: commandTimeout) else { return false }
        defer { connection.close() }
        return (try? connection.command(["PING"])) == .status("PONG")
    }

    var looksStale: Bool {
        guard fileDescriptor >= 0 else { return true }
        var pollfd = Glibc.pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pollfd, 1, 0)
        return ready != 0
    }

    func command(_ arguments: [String]) throws(RedisError) -> RedisValue {
        try pipeline([arguments])[0]
    }

    /// Sends every command, then reads every reply. Error replies come back as `.error` values;
    /// a broken connection throws and closes this connection.
    func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisValue] {
        try queue(commands)
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        let sent = ContinuousClock.now
        for arguments in commands {
            replies.append(try reply(to: arguments, sentAt: sent))
        }
        return replies
    }

    /// Puts commands in the output buffer. They go out with the next `reply(to:sentAt:)`, which
    /// writes the whole buffer before it reads.
    func queue(_ commands: [[String]]) throws(RedisError) {
        guard let context else { throw .closed }
        for arguments in commands {
            let status = Self.withArgv(arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            if status != REDIS_OK {
                let reason = contextError
                close()
                throw .connectionLost(endpoint: url.description, reason: reason)
            }
        }
    }

    /// The reply to the oldest queued command, `arguments`, sent at `sent` (both for the error).
    func reply(to arguments: [String], sentAt sent: ContinuousClock.Instant) throws(RedisError) -> RedisValue {
        guard let context else { throw .closed }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
            // Which command and how long it waited tell a server that stalled (a timeout after
            // the full command timeout) from a socket that failed at once.
            let waited = ContinuousClock.now - sent
            // A reply missing for the whole timeout says which side held it: still unread by
            // the server, or read by a process that is not the server at all.
            let socket = waited > .seconds(5) ? SocketState(of: fileDescriptor).map { "; socket: \($0)" } ?? "" : ""
            let reason =
                "\(contextError) (waiting \(waited.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))) for the reply to \(arguments.first ?? "?")\(socket))"
            close()
            throw .connectionLost(endpoint: url.description, reason: reason)
        }
        defer { freeReplyObject(raw) }
        return Self.convert(raw!.assumingMemoryBound(to: redisReply.self))
    }

    /// Reads one reply without sending anything: the next message of a subscription.
    func readReply() throws(RedisError) -> RedisValue {
        guard let context else { throw .closed }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
            let reason = contextError
            close()
            throw .connectionLost(endpoint: url.description, reason: reason)
        }
        defer { freeReplyObject(raw) }
        return Self.convert(raw!.assumingMemoryBound(to: redisReply.self))
    }

    private var contextError: String {
        guard let context else { return "connection closed" }
        let message = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
        if message.isEmpty {
            return context.pointee.err == REDIS_ERR_EOF ? "server closed the connection" : "I/O error \(context.pointee.err)"
        }
        return message
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(Array(UnsafeRawBufferPointer(start: r.str, count: Int(r.len))))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            var values: [RedisValue] = []
            values.reserveCapacity(Int(r.elements))
            for index in 0..<Int(r.elements) {
                values.append(convert(r.element[index]!))
            }
            return .array(values)
        default:
            return .null
        }
    }

    /// Lays every argument out in one allocation, as hiredis' argv/argvlen pair.
    private static func withArgv<R>(
        _ arguments: [String],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        var total = 0
        for argument in arguments { total += argument.utf8.count }
        let bytes = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
        let pointers = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: arguments.count)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: arguments.count)
        defer {
            bytes.deallocate()
            pointers.deallocate()
            lengths.deallocate()
        }
        var offset = 0
        for (index, argument) in arguments.enumerated() {
            let utf8 = argument.utf8
            let count = utf8.count
            let start = bytes + offset
            if count > 0 {
                let copied: Void? = utf8.withContiguousStorageIfAvailable { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { start.update(from: $0.baseAddress!, count: count) }
                }
                if copied == nil {
                    var cursor = start
                    for byte in utf8 {
                        cursor.pointee = CChar(bitPattern: byte)
                        cursor += 1
                    }
                }
            }
            pointers[index] = UnsafePointer(start)
            lengths[index] = count
            offset += count
        }
        return body(Int32(arguments.count), pointers, lengths)
    }
}

extension RedisURL.Endpoint {
    var isTCP: Bool {
        if case .tcp = self { return true }
        return false
    }
}

extension timeval {
    init(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
