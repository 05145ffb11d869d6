import DroverBrain
import DroverCore
import DroverHTTP
import DroverSessionLog
import DroverTools
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A hand that notes what the session's log held each time it was asked to provision.
private final class RecordingHand: Hand {
    let log: SessionLog
    let seen = Locked<[[String]]>([])
    init(log: SessionLog) { self.log = log }
    var tools: [ModelToolDefinition] { InProcessHand().tools }
    func prepare(session: SessionID) async {
        let types = (try? await log.read(session, limit: 1000).map(\.type)) ?? ["unreadable"]
        seen.withLock { $0.append(types) }
    }
    func execute(name: String, input: JSONValue, context: ToolContext) async throws -> ToolResult {
        try await InProcessHand().execute(name: name, input: input, context: context)
    }
}

@Suite("When hands are provisioned")
struct LazyHandsTests {
    /// Lazy provisioning beside the model call used to start before the turn's first append, so a
    /// sandbox's start took CPU from building and sending the request: it now starts once the
    /// request is on the wire.
    @Test("lazy hands start once the turn's first model request is sent, eager hands before it; each once per turn")
    func lazyAfterSend() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "Checking."
                    tool_use: {name: echo, input: {text: "ok"}}
                  - text: "Done."
                """
        ) { brain in
            for eager in [false, true] {
                let hand = RecordingHand(log: brain.log)
                let runner = brain.runner(hand: hand, eagerHands: eager)
                let session = try await brain.newSession(saying: "Grade submission 7")
                let outcome = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
                #expect(outcome == TurnOutcome(.idle(.endTurn), modelRequests: 2))
                // The lazy provisioning runs in a task of its own: wait for it to have looked.
                let deadline = ContinuousClock.now + .seconds(30)
                while hand.seen.value.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
                let seen = hand.seen.value
                #expect(seen.count == 1, "provisioned \(seen.count) times in one turn (eager: \(eager))")
                let atPrepare = try #require(seen.first)
                if eager {
                    #expect(!atPrepare.contains("span.model_request_start"), "eager hands were prepared after the request: \(atPrepare)")
                } else {
                    #expect(atPrepare.contains("span.model_request_start"), "lazy hands were prepared before the request: \(atPrepare)")
                    #expect(atPrepare.filter { $0 == "span.model_request_start" }.count == 1, "\(atPrepare)")
                }
            }
        }
    }

    @Test("an HTTP request reports itself sent while the server still holds its answer, once")
    func requestSentBeforeAnswer() async throws {
        let server = try HeldAnswerServer()
        defer { server.close() }
        let sent = Locked(0)
        var request = HTTPRequest(url: "http://127.0.0.1:\(server.port)/v1/messages", body: Array(repeating: UInt8(ascii: "x"), count: 300_000))
        request.onSent = { sent.withLock { $0 += 1 } }
        let transfer = Task { try await CurlHTTPClient.shared.send(request) }
        let deadline = ContinuousClock.now + .seconds(60)
        while sent.value == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(sent.value == 1, "the request was not reported sent while its answer was held")
        #expect(!server.answered)
        server.answer()
        let response = try await transfer.value
        #expect(response.status == 200 && response.body == Array("ok".utf8))
        #expect(server.receivedBodyBytes == 300_000)
        #expect(sent.value == 1)
    }
}

/// A one-connection HTTP server on loopback that reads a whole request, then answers only when
/// told to.
private final class HeldAnswerServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let release = DispatchSemaphore(value: 0)
    private let state = Locked((answered: false, body: 0))

    struct SetupFailed: Error {}

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound, listen(fd, 1) == 0 else { throw SetupFailed() }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in serve() }.start()
    }

    var answered: Bool { state.value.answered }
    var receivedBodyBytes: Int { state.value.body }
    func answer() { release.signal() }
    func close() {
        release.signal()
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func serve() {
        let client = accept(listener, nil, nil)
        guard client >= 0 else { return }
        defer { Glibc.close(client) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var expected: Int?
        var headEnd = 0
        while expected.map({ received.count < headEnd + $0 }) ?? true {
            let n = chunk.withUnsafeMutableBytes { read(client, $0.baseAddress!, $0.count) }
            guard n > 0 else { return }
            received += chunk[0..<n]
            if expected == nil, let end = Self.find([13, 10, 13, 10], in: received) {
                headEnd = end + 4
                let head = String(decoding: received[0..<end], as: UTF8.self).lowercased()
                let line = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                expected = line.flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            }
        }
        state.withLock { $0.body = received.count - headEnd }
        release.wait()
        state.withLock { $0.answered = true }
        let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
        _ = reply.withUnsafeBytes { write(client, $0.baseAddress!, $0.count) }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { Array(haystack[$0..<$0 + needle.count]) == needle }
    }
}
