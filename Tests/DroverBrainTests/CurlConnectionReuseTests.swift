import DroverHTTP
import DroverTesting
import Foundation
import Testing

/// The HTTP client keeps connections alive between requests (a model API is called once per
/// model request, all day), but never lets a connection made to a pinned, checked address serve
/// another request.
@Suite("HTTP connection reuse")
struct CurlConnectionReuseTests {
    @Test("requests one after another share one connection; a pinned request gets its own, and leaves it to nobody")
    func reuseExceptPinned() async throws {
        let origin = try await LoopbackOrigin.start()
        defer { Task { await origin.stop() } }
        let client = CurlHTTPClient(idleThreads: 4)
        let url = "http://127.0.0.1:\(origin.port)/"
        for number in 0..<3 {
            let reply = try await client.send(HTTPRequest(url: url + "plain-\(number)", method: "GET"))
            #expect(reply.status == 200)
        }
        #expect(origin.connections == 1)
        for number in 0..<2 {
            var pinned = HTTPRequest(url: url + "pinned-\(number)", method: "GET")
            pinned.resolve = ["127.0.0.1:\(origin.port):127.0.0.1"]
            #expect(try await client.send(pinned).status == 200)
        }
        // Each pinned request connected afresh, and its connection went with its handle.
        #expect(origin.connections == 3)
        #expect(try await client.send(HTTPRequest(url: url + "plain-again", method: "GET")).status == 200)
        #expect(origin.connections == 3)
        #expect(origin.requests.map(\.uri) == ["/plain-0", "/plain-1", "/plain-2", "/pinned-0", "/pinned-1", "/plain-again"])
    }

    @Test("requests at once each get a thread and a connection; none waits for another")
    func concurrentRequests() async throws {
        let origin = try await LoopbackOrigin.start()
        defer { Task { await origin.stop() } }
        let client = CurlHTTPClient(idleThreads: 2)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<16 {
                group.addTask { try await client.send(HTTPRequest(url: "http://127.0.0.1:\(origin.port)/\(number)", method: "GET")).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 16))
        #expect(Set(origin.requests.map(\.uri)).count == 16)
    }
}
