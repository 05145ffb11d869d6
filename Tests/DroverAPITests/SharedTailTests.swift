import DroverAPI
import DroverBrain
import DroverCore
import DroverHTTP
import DroverRedis
import DroverTesting
import Foundation
import Testing

enum StreamTestError: Error { case noData(String) }

extension LocalModeTests {
    /// Event ids as they arrive on one SSE stream.
    final class StreamReader: Sendable {
        let ids = Locked<[String]>([])
        let connected = Locked(false)
        let task: Task<Void, Never>

        init(_ url: String, lastEventID: String? = nil) {
            var headers = [("anthropic-beta", "managed-agents-2026-04-01")]
            if let lastEventID { headers.append(("last-event-id", lastEventID)) }
            let request = HTTPRequest(url: url, method: "GET", headers: headers, body: [], readTimeout: .seconds(120))
            let (ids, connected) = (self.ids, self.connected)
            task = Task {
                var pending = ""
                do {
                    for try await part in CurlHTTPClient.shared.stream(request) {
                        switch part {
                        case .head: connected.withLock { $0 = true }
                        case .body(let bytes):
                            pending += String(decoding: bytes, as: UTF8.self)
                            guard let end = pending.lastIndex(of: "\n") else { continue }
                            for line in pending[..<end].split(separator: "\n") where line.hasPrefix("id: ") {
                                ids.withLock { $0.append(String(line.dropFirst(4))) }
                            }
                            pending = String(pending[pending.index(after: end)...])
                        }
                    }
                } catch {}
            }
        }
    }

    func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
        #expect(try await eventually(within: timeout, polling: .milliseconds(20), condition), "timed out waiting until \(what)")
    }

    /// Clients blocked in XREAD on the server: the live tails.
    func tailingConnections(_ redis: RedisClient, command: String = "xread") async throws -> Int {
        let list = try await redis.send("CLIENT", "LIST").string ?? ""
        return list.split(separator: "\n").filter { $0.contains(" cmd=\(command)") }.count
    }

    @Test("streams on one session share one live tail and delta subscription: one Redis connection each for 30 streams, none once they close")
    func streamsShareOneTail() async throws {
        // A dropped client is noticed when a ping fails to write.
        try await withAPIAndRedis(configure: { $0.pingInterval = .milliseconds(200) }) { base, _, redis in
            let agent = try #require(
                try await call(base + "/v1/agents", "POST", body: #"{"name": "a", "model": "m"}"#).1.objectValue?["id"]?.stringValue)
            let environment = try #require(
                try await call(base + "/v1/environments", "POST", body: #"{"name": "e", "config": {"type": "cloud"}}"#).1.objectValue?["id"]?
                    .stringValue)
            let session = try #require(
                try await call(base + "/v1/sessions", "POST", body: #"{"agent": "\#(agent)", "environment_id": "\#(environment)"}"#).1.objectValue?[
                    "id"]?.stringValue)
            let streamURL = base + "/v1/sessions/\(session)/events/stream"
            func send(_ text: String) async throws -> String {
                let (status, body) = try await call(
                    base + "/v1/sessions/\(session)/events", "POST",
                    body: #"{"events": [{"type": "user.message", "content": [{"type": "text", "text": "\#(text)"}]}]}"#)
                #expect(status == 200)
                guard case .array(let data)? = body.objectValue?["data"] else { throw StreamTestError.noData("\(body)") }
                return try #require(data.first?.objectValue?["id"]?.stringValue)
            }
            func health(_ field: String) async throws -> Int {
                guard case .number(let value)? = try await call(base + "/health").1.objectValue?[field] else { return -1 }
                return Int(value)
            }

            // Half of them also want message previews, which come from one shared subscription.
            let readers = (0..<30).map { StreamReader(streamURL + ($0 % 2 == 0 ? "?event_deltas=agent.message" : "")) }
            try await waitUntil("30 streams are open") { try await health("open_streams") == 30 }
            try await waitUntil("the tail is live") { try await tailingConnections(redis) == 1 }
            try await waitUntil("the deltas are subscribed") { try await tailingConnections(redis, command: "subscribe") == 1 }
            #expect(try await health("live_delta_subscriptions") == 1)
            var sent: [String] = []
            for n in 0..<5 { sent.append(try await send("message \(n)")) }
            try await waitUntil("every stream has every event") { readers.allSatisfy { $0.ids.value.count >= 5 } }
            for reader in readers { #expect(reader.ids.value == sent, "each stream gets each event once, in order") }
            #expect(try await health("live_tails") == 1)
            #expect(try await tailingConnections(redis) == 1, "one blocking connection for 30 streams")

            // A late stream resumes from Last-Event-ID through the shared tail, then follows live.
            let late = StreamReader(streamURL, lastEventID: sent[1])
            try await waitUntil("the late stream caught up") { late.ids.value.count >= 3 }
            sent.append(try await send("message 5"))
            try await waitUntil("the late stream got the live event") { late.ids.value.count >= 4 }
            #expect(late.ids.value == Array(sent[2...]))
            #expect(try await tailingConnections(redis) == 1)

            for reader in readers + [late] { reader.task.cancel() }
            try await waitUntil("the streams closed") { try await health("open_streams") == 0 }
            try await waitUntil("the tail stopped") { try await health("live_tails") == 0 }
            try await waitUntil("its connection closed") { try await tailingConnections(redis) == 0 }
            try await waitUntil("the deltas subscription closed") { try await tailingConnections(redis, command: "subscribe") == 0 }
            #expect(try await health("live_delta_subscriptions") == 0)
        }
    }
}
