import CCurl
import DroverCore
import Foundation
import Synchronization

public struct HTTPRequest: Sendable {
    public var url: String
    public var method: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var connectTimeout: Duration
    /// The longest the server may stay silent once connected (no byte of response).
    public var readTimeout: Duration
    /// `host:port:address` entries (curl's `CURLOPT_RESOLVE`): the connection goes to the address
    /// a caller already checked, whatever the name resolves to by then.
    public var resolve: [String] = []
    /// Called once, on the transfer's thread, when the whole request has been written to the
    /// connection: from then on only the peer's answer is awaited (a model's time to first token).
    public var onSent: (@Sendable () -> Void)?

    public init(
        url: String, method: String = "POST", headers: [(String, String)] = [], body: [UInt8] = [],
        connectTimeout: Duration = .seconds(10), readTimeout: Duration = .seconds(120)
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
    }
}

public enum HTTPStreamPart: Sendable, Equatable {
    /// Status and headers (names lowercased), before any body.
    case head(status: Int, headers: [String: String])
    case body([UInt8])
}

public enum HTTPClientError: Error, Equatable, CustomStringConvertible {
    case connectFailed(String)
    case timedOut(String)
    case transport(String)

    public var description: String {
        switch self {
        case .connectFailed(let message): "cannot connect: \(message)"
        case .timedOut(let message): "timed out: \(message)"
        case .transport(let message): "transfer failed: \(message)"
        }
    }
}

/// HTTP over libcurl, streaming the response as it arrives. Each request's blocking transfer runs
/// on a thread of the client's (`CurlTransferThreads`), never on Swift's cooperative pool;
/// cancelling the consuming task aborts the transfer at the next progress callback.
///
/// A thread keeps its curl handle between transfers, and with it the connections curl keeps
/// alive: the next request to the same origin (a model API, most often) reuses one instead of
/// connecting again. A request with `resolve` pins gets a handle of its own that is thrown away
/// after it, so a connection made to a checked address never serves another request.
public final class CurlHTTPClient: Sendable {
    public static let shared = CurlHTTPClient()

    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }()

    private let threads: CurlTransferThreads

    /// `idleThreads`: how many threads (and their handles and connections) wait for the next
    /// request once their transfer is done; more are started when more requests run at once.
    public init(idleThreads: Int = 128) {
        _ = Self.globalInit
        threads = CurlTransferThreads(idleLimit: idleThreads)
    }

    public func stream(_ request: HTTPRequest) -> AsyncThrowingStream<HTTPStreamPart, Error> {
        let (stream, continuation) = AsyncThrowingStream<HTTPStreamPart, Error>.makeStream()
        let transfer = Transfer(continuation: continuation, onSent: request.onSent)
        continuation.onTermination = { _ in transfer.cancel() }
        if request.resolve.isEmpty {
            threads.run { handle in transfer.perform(request, on: handle) }
        } else {
            threads.run { _ in
                let pinned = curl_easy_init()
                defer { if let pinned { curl_easy_cleanup(pinned) } }
                return transfer.perform(request, on: pinned)
            }
        }
        return stream
    }

    /// The whole response at once.
    public func send(_ request: HTTPRequest) async throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        var status = 0
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        for try await part in stream(request) {
            switch part {
            case .head(let code, let fields):
                status = code
                headers = fields
            case .body(let bytes):
                body += bytes
            }
        }
        return (status, headers, body)
    }
}

/// One transfer's state, shared between the curl thread and the consumer.
private final class Transfer: @unchecked Sendable {
    let continuation: AsyncThrowingStream<HTTPStreamPart, Error>.Continuation
    private let cancelled = Atomic<Bool>(false)
    var handle: UnsafeMutableRawPointer?
    var headers: [String: String] = [:]
    var headSent = false
    private var onSent: (@Sendable () -> Void)?

    init(continuation: AsyncThrowingStream<HTTPStreamPart, Error>.Continuation, onSent: (@Sendable () -> Void)?) {
        self.continuation = continuation
        self.onSent = onSent
    }

    /// The request is out once every byte of its body is, or (a request without one) once the
    /// answer begins. Only the transfer's thread calls this.
    func reportSentIfDone(uploaded: Int64, of total: Int64) {
        guard let report = onSent, headSent || (total > 0 && uploaded >= total) else { return }
        onSent = nil
        report()
    }

    func cancel() { cancelled.store(true, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    func sendHeadIfNeeded() {
        guard !headSent, let handle else { return }
        headSent = true
        reportSentIfDone(uploaded: 0, of: 0)
        continuation.yield(.head(status: drover_curl_response_code(handle), headers: headers))
    }

    /// Runs the request on `curl`, a handle whose options are reset here and whose connection
    /// cache is kept (nil when none could be made), and returns what ends the consumer's stream:
    /// the thread makes itself available for the next request before it runs that, so that a
    /// caller who sends again at once finds the thread, and its connection, free.
    func perform(_ request: HTTPRequest, on curl: UnsafeMutableRawPointer?) -> @Sendable () -> Void {
        let continuation = self.continuation
        guard let curl else { return { continuation.finish(throwing: HTTPClientError.transport("curl_easy_init failed")) } }
        curl_easy_reset(curl)
        handle = curl
        defer { handle = nil }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        // curl would otherwise send "Expect: 100-continue" for larger bodies and wait for it.
        list = curl_slist_append(list, "Expect:")
        defer { curl_slist_free_all(list) }
        var pins: UnsafeMutablePointer<curl_slist>?
        for entry in request.resolve { pins = curl_slist_append(pins, entry) }
        defer { curl_slist_free_all(pins) }
        if pins != nil { _ = drover_curl_setopt_slist(curl, CURLOPT_RESOLVE, pins) }

        let context = Unmanaged.passRetained(self)
        defer { context.release() }
        let pointer = context.toOpaque()
        _ = drover_curl_setopt_string(curl, CURLOPT_URL, request.url)
        _ = drover_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method)
        _ = drover_curl_setopt_slist(curl, CURLOPT_HTTPHEADER, list)
        _ = drover_curl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = drover_curl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout.milliseconds))
        // A read timeout: abort when fewer than 1 byte/s arrive for readTimeout seconds.
        _ = drover_curl_setopt_long(curl, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = drover_curl_setopt_long(curl, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.readTimeout.components.seconds)))
        if !request.body.isEmpty || request.method == "POST" {
            _ = drover_curl_setopt_long(curl, CURLOPT_POSTFIELDSIZE, request.body.count)
            request.body.withUnsafeBytes { buffer in
                _ = drover_curl_setopt_pointer(
                    curl, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        _ = drover_curl_setopt_pointer(curl, CURLOPT_WRITEDATA, pointer)
        _ = drover_curl_setopt_data_callback(curl, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            if transfer.isCancelled { return 0 }
            transfer.sendHeadIfNeeded()
            let length = size * count
            if length > 0, let data {
                transfer.continuation.yield(.body(Array(UnsafeRawBufferPointer(start: data, count: length))))
            }
            return length
        }
        _ = drover_curl_setopt_pointer(curl, CURLOPT_HEADERDATA, pointer)
        _ = drover_curl_setopt_data_callback(curl, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            guard let data else { return length }
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("HTTP/") {
                transfer.headers = [:]  // a new response (after 100 Continue or a redirect)
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                transfer.headers[name] = value
            }
            return length
        }
        _ = drover_curl_setopt_long(curl, CURLOPT_NOPROGRESS, 0)
        _ = drover_curl_setopt_pointer(curl, CURLOPT_XFERINFODATA, pointer)
        _ = drover_curl_setopt_progress_callback(curl) { context, _, _, uploadTotal, uploaded in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            transfer.reportSentIfDone(uploaded: Int64(uploaded), of: Int64(uploadTotal))
            return transfer.isCancelled ? 1 : 0
        }

        let code = curl_easy_perform(curl)
        if code == CURLE_OK {
            sendHeadIfNeeded()
            return { continuation.finish() }
        }
        if isCancelled { return { continuation.finish(throwing: CancellationError()) } }
        let message = String(cString: curl_easy_strerror(code))
        let error: HTTPClientError =
            switch code {
            case CURLE_OPERATION_TIMEDOUT: .timedOut(message)
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .connectFailed(message)
            default: .transport(message)
            }
        return { continuation.finish(throwing: error) }
    }
}
