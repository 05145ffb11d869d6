import ArgumentParser
import DroverAPI
import DroverBrain
import DroverCore
import DroverDatabase
import DroverHTTP
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation
import Logging

struct APIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Event-send latency and SSE fan-out of the HTTP API, over real HTTP on loopback.",
        discussion: """
            Starts the API in-process (local mode) on a fresh embedded redis-server and SQLite file in a
            temporary directory; no worker runs, so this measures the API and the log, not the model.
              send     --sends sequential POST /v1/sessions/{id}/events of one user.message each:
                       request to response, p50/p99 in ms (includes append and turn enqueue).
              fan-out  --subscribers SSE streams on one session; --events user.messages are sent,
                       --interval-ms apart; delivery lag is send start to arrival on each stream.
            """
    )

    @Option(help: "Sequential event sends to time.") var sends = 500
    @Option(help: "SSE subscribers on one session.") var subscribers = 200
    @Option(help: "Events sent while they listen.") var events = 50
    @Option(help: "Milliseconds between those events.") var intervalMs = 20
    @Option(help: "on: record metrics and scrape them every second, as drover serve does; off: no metrics.") var metrics = BenchMetrics.on

    func run() async throws {
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-api-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            let redis = try await RedisClient.connect(redisServer.url)
            let (exposition, scraper) = metrics.start(redis: redis)
            defer { scraper?.cancel() }
            let database = try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path)
            let store = ControlPlaneStore(database: database)
            var options = APIServer.Options()
            options.port = 0
            // The limiter's middleware runs as in `drover serve`, with a budget this bench never spends.
            options.rateLimit = (1_000_000, 1_000_000)
            options.metrics = exposition
            let server = APIServer(
                log: SessionLog(redis: redis, database: database), store: store, queue: TaskQueue(redis: redis),
                redis: redis, options: options, localWorkspaceID: try await store.workspace(named: "default"))
            let (port, serving) = await serveInProcess(server, label: "drover.bench.api")
            let client = BenchClient(base: "http://127.0.0.1:\(port)")
            defer { serving.cancel() }
            do {
                let sessionA = try await client.newSession()
                var latencies: [Double] = []
                for index in 0..<sends {
                    let started = ContinuousClock.now
                    _ = try await client.send(sessionA, text: "send \(index)")
                    latencies.append((ContinuousClock.now - started).milliseconds)
                }
                latencies.sort()
                let fanout = try await measureFanOut(client)
                print(
                    try encodeJSON(
                        JSONValue.object([
                            "benchmark": "api", "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                            "send": .object([
                                "samples": .number(Double(latencies.count)), "p50_ms": .number(round3(percentile(latencies, 50))),
                                "p99_ms": .number(round3(percentile(latencies, 99))), "max_ms": .number(round3(latencies.last ?? .nan)),
                            ]),
                            "fanout": fanout,
                        ])))
            } catch {
                redis.close()
                await redisServer.stop(force: true)
                throw error
            }
            serving.cancel()
            redis.close()
            await redisServer.stop()
        }
    }

    private func measureFanOut(_ client: BenchClient) async throws -> JSONValue {
        let session = try await client.newSession()
        let arrivals = Locked<[Int64: [ContinuousClock.Instant]]>([:])
        let connected = Locked(0)
        let listeners = (0..<subscribers).map { _ in
            Task {
                var pending = ""
                for try await part in CurlHTTPClient.shared.stream(
                    client.request("/v1/sessions/\(session)/events/stream", method: "GET", readTimeout: .seconds(600)))
                {
                    switch part {
                    case .head: connected.withLock { $0 += 1 }
                    case .body(let bytes):
                        let now = ContinuousClock.now
                        pending += String(decoding: bytes, as: UTF8.self)
                        // Chunks may split a line; only complete lines are read.
                        guard let end = pending.lastIndex(of: "\n") else { continue }
                        for line in pending[..<end].split(separator: "\n") where line.hasPrefix("id: ") {
                            if let seq = Int64(line.split(separator: "_").last ?? "") { arrivals.withLock { $0[seq, default: []].append(now) } }
                        }
                        pending = String(pending[pending.index(after: end)...])
                    }
                }
            }
        }
        defer { listeners.forEach { $0.cancel() } }
        let deadline = ContinuousClock.now + .seconds(60)
        while connected.value < subscribers, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard connected.value == subscribers else { throw ValidationError("only \(connected.value) of \(subscribers) subscribers connected") }
        var sent: [Int64: ContinuousClock.Instant] = [:]
        for index in 0..<events {
            let started = ContinuousClock.now
            let seq = try await client.send(session, text: "fan-out \(index)")
            sent[seq] = started
            try await Task.sleep(for: .milliseconds(intervalMs))
        }
        let expected = subscribers * events
        let until = ContinuousClock.now + .seconds(30)
        while arrivals.value.values.reduce(0, { $0 + $1.count }) < expected, ContinuousClock.now < until {
            try await Task.sleep(for: .milliseconds(20))
        }
        var lags: [Double] = []
        for (seq, times) in arrivals.value {
            guard let start = sent[seq] else { continue }
            lags += times.map { ($0 - start).milliseconds }
        }
        lags.sort()
        return .object([
            "subscribers": .number(Double(subscribers)), "events": .number(Double(events)),
            "delivered": .number(Double(lags.count)), "expected": .number(Double(expected)),
            "lag_p50_ms": .number(round3(percentile(lags, 50))), "lag_p99_ms": .number(round3(percentile(lags, 99))),
            "lag_max_ms": .number(round3(lags.last ?? .nan)),
        ])
    }
}

/// The few API calls the benchmark makes, over libcurl.
/// JSON over loopback with curl, as the benches' in-process API (local mode, no key) takes it.
struct BenchClient {
    let base: String

    func request(_ path: String, method: String, body: String? = nil, readTimeout: Duration = .seconds(30)) -> HTTPRequest {
        HTTPRequest(
            url: base + path, method: method, headers: [("anthropic-beta", "managed-agents-2026-04-01"), ("content-type", "application/json")],
            body: Array((body ?? "").utf8), readTimeout: readTimeout)
    }

    func call(_ path: String, _ body: String) async throws -> [String: JSONValue] {
        let response = try await CurlHTTPClient.shared.send(request(path, method: "POST", body: body))
        let json = (try? JSONValue.parse(String(decoding: response.body, as: UTF8.self)))?.objectValue ?? [:]
        guard response.status == 200 else { throw ValidationError("POST \(path): \(response.status) \(json)") }
        return json
    }

    /// A GET's JSON body; anything but 200 throws.
    func get(_ path: String) async throws -> JSONValue {
        let response = try await CurlHTTPClient.shared.send(request(path, method: "GET"))
        let json = (try? JSONValue.parse(String(decoding: response.body, as: UTF8.self))) ?? .null
        guard response.status == 200 else { throw ValidationError("GET \(path): \(response.status) \(json.compactJSON)") }
        return json
    }

    func newSession() async throws -> String {
        let agent = try await call("/v1/agents", #"{"name": "bench", "model": "claude-sonnet-4-5"}"#)
        let environment = try await call("/v1/environments", #"{"name": "bench"}"#)
        let session = try await call("/v1/sessions", JSONValue.object(["agent": agent["id"]!, "environment_id": environment["id"]!]).compactJSON)
        return session["id"]!.stringValue!
    }

    /// Sends one user.message and returns its seq.
    func send(_ session: String, text: String) async throws -> Int64 {
        let body = #"{"events": [{"type": "user.message", "content": [{"type": "text", "text": "\#(text)"}]}]}"#
        let reply = try await call("/v1/sessions/\(session)/events", body)
        guard case .array(let data)? = reply["data"], let id = data.first?.objectValue?["id"]?.stringValue,
            let seq = Int64(id.split(separator: "_").last ?? "")
        else {
            throw ValidationError("send: unexpected reply \(reply)")
        }
        return seq
    }
}

/// Runs `server` on a free loopback port, logging nothing below critical; returns the port and
/// the task that serves (cancel it to stop).
func serveInProcess(_ server: APIServer, label: String) async -> (port: Int, serving: Task<Void, Error>) {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
    let app = server.application(logger: logger) { port in
        readyContinuation.yield(port)
        readyContinuation.finish()
    }
    let serving = Task { try await app.run() }
    var port = 0
    for await bound in ready { port = bound }
    return (port, serving)
}

private extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
