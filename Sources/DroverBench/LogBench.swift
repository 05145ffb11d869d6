import ArgumentParser
import DroverCore
import DroverDatabase
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct LogBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Measure session-log appends/s with the recorder running, mirror lag, and wake time.",
        discussion: """
            Phases, in one run against one server and one SQLite file:
              append  --appenders tasks append --events events to --sessions sessions, --per-append
                      events per append (a turn appends a few at once), while an in-process recorder
                      mirrors them into SQLite; mirror lag is append (Redis time) to SQLite commit.
              wake    a session of --wake-events events is woken --wake-runs times from Redis, then
                      trimmed from Redis and woken from SQLite alone.
              stream  a session of --stream-wake-events events is woken once streaming, from Redis
                      and then from SQLite alone, and once whole into memory, each with the peak
                      of this process's resident memory over that wake alone.
            With DROVER_REDIS_URL unset it uses a fresh embedded redis-server and a temporary SQLite file.
            """
    )

    @Option(help: "Events to append in the append phase.") var events = 200_000
    @Option(help: "Sessions they are spread over.") var sessions = 200
    @Option(help: "Concurrent appenders (a fleet's turns in flight).") var appenders = 16
    @Option(help: "Events per append call.") var perAppend = 4
    @Option(help: "Target events/s across appenders; 0 appends as fast as possible.") var rate = 30_000
    @Option(help: "Events in the session that is woken.") var wakeEvents = 10_000
    @Option(help: "Wake repetitions per source.") var wakeRuns = 7
    @Option(help: "Events in the session that is woken streaming (0 skips that phase).") var streamWakeEvents = 1_000_000

    func run() async throws {
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-log-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let configuration = try DroverConfiguration.fromEnvironment()
            var embedded: EmbeddedRedis?
            let url: RedisURL
            if let text = configuration.redisURL {
                url = try RedisURL(parsing: text)
            } else {
                embedded = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
                url = embedded!.url
            }
            let redis = try await RedisClient.connect(url)
            defer { redis.close() }
            let database = try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path)
            do {
                print(try encodeJSON(try await measure(redis: redis, database: database)))
            } catch {
                await embedded?.stop(force: true)
                throw error
            }
            await embedded?.stop(force: true)
        }
    }

    private func measure(redis: RedisClient, database: MirrorDatabase) async throws -> JSONValue {
        let log = SessionLog(redis: redis, database: database)
        let ids = (0..<sessions).map { _ in SessionID.make() }
        for id in ids { try await log.create(id) }
        // Lags of the paced append phase only (nil once it is over): the bulk loads that follow
        // would swamp them.
        let lags = Locked<[Double]?>([])
        let recorder = Recorder(redis: redis, database: database, lagObserver: { batch in lags.withLock { $0? += batch } })
        let recording = Task { try await recorder.run() }

        let (events, appenders, perAppend, rate) = (self.events, self.appenders, self.perAppend, self.rate)
        let body = NewEvent(.agentMessage(AgentMessage(content: [.text(String(repeating: "lorem ipsum ", count: 12))])))
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var done = 0, round = appender
                    let share = events / appenders
                    while done < share {
                        if rate > 0 {
                            // Paced: this appender's next append is due at its share of the rate.
                            let due = start + .seconds(Double(done) * Double(appenders) / Double(rate))
                            if due > clock.now { try await Task.sleep(until: due, clock: .continuous) }
                        }
                        let count = min(perAppend, share - done)
                        _ = try await log.append(ids[round % ids.count], Array(repeating: body, count: count))
                        done += count
                        round += appenders
                    }
                }
            }
            try await group.waitForAll()
        }
        let appendSeconds = (clock.now - start).seconds
        let appended = (events / appenders) * appenders
        while recorder.stats.eventsRecorded < appended {
            try await Task.sleep(for: .milliseconds(10))
        }
        let drainSeconds = (clock.now - start).seconds
        let lag = lags.withLock { lags in
            defer { lags = nil }
            return (lags ?? []).sorted()
        }

        // Wake: one long session, from Redis, then from SQLite alone.
        let long = SessionID.make()
        try await log.create(long)
        var written = 0
        while written < wakeEvents {
            let count = min(50, wakeEvents - written)
            _ = try await log.append(long, Array(repeating: body, count: count))
            written += count
        }
        var fromRedis: [Double] = []
        for _ in 0..<wakeRuns {
            let started = clock.now
            let snapshot = try await log.wake(long)
            fromRedis.append((clock.now - started).seconds * 1000)
            guard snapshot.events.count == wakeEvents, snapshot.source == .redis else {
                throw ValidationError("wake from Redis returned \(snapshot.events.count) events from \(snapshot.source)")
            }
        }
        // A very long session, woken streaming and whole, each wake's memory peak on its own.
        let huge = SessionID.make()
        var streamed: [String: JSONValue] = [:]
        if streamWakeEvents > 0 {
            try await log.create(huge)
            let (total, perCall) = (streamWakeEvents, 100)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for appender in 0..<appenders {
                    group.addTask {
                        for first in stride(from: appender * perCall, to: total, by: perCall * appenders) {
                            _ = try await log.append(huge, Array(repeating: body, count: min(perCall, total - first)))
                        }
                    }
                }
                try await group.waitForAll()
            }
            streamed["redis_streaming"] = try await measuredWake(log, huge, streaming: true, expecting: .redis)
            streamed["redis_whole"] = try await measuredWake(log, huge, streaming: false, expecting: .redis)
        }
        while recorder.stats.eventsRecorded < appended + wakeEvents + streamWakeEvents {
            try await Task.sleep(for: .milliseconds(10))
        }
        recording.cancel()
        _ = try? await recording.value
        var trimming = Recorder.Options()
        trimming.retentionIdle = .zero
        _ = try await Recorder(redis: redis, database: database, options: trimming).applyRetention()
        var fromSQLite: [Double] = []
        for _ in 0..<wakeRuns {
            let started = clock.now
            let snapshot = try await log.wake(long)
            fromSQLite.append((clock.now - started).seconds * 1000)
            guard snapshot.events.count == wakeEvents, snapshot.source == .sqlite else {
                throw ValidationError("wake from SQLite returned \(snapshot.events.count) events from \(snapshot.source)")
            }
        }

        if streamWakeEvents > 0 {
            streamed["sqlite_streaming"] = try await measuredWake(log, huge, streaming: true, expecting: .sqlite)
            streamed["events"] = .number(Double(streamWakeEvents))
        }

        return .object([
            "benchmark": .string("log"),
            "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
            "append": .object([
                "events": .number(Double(appended)), "sessions": .number(Double(sessions)),
                "appenders": .number(Double(appenders)), "events_per_append": .number(Double(perAppend)),
                "target_events_per_second": .number(Double(rate)),
                "seconds": .number(round3(appendSeconds)),
                "events_per_second": .number(round3(Double(appended) / appendSeconds)),
                "appends_per_second": .number(round3(Double(appended) / Double(perAppend) / appendSeconds)),
                "all_mirrored_after_seconds": .number(round3(drainSeconds)),
            ]),
            "mirror_lag_ms": .object([
                "samples": .number(Double(lag.count)), "p50": .number(round3(percentile(lag, 50))),
                "p99": .number(round3(percentile(lag, 99))), "max": .number(round3(lag.last ?? .nan)),
            ]),
            "wake_ms": .object([
                "events": .number(Double(wakeEvents)), "runs": .number(Double(wakeRuns)),
                "redis_median": .number(round3(percentile(fromRedis.sorted(), 50))),
                "sqlite_median": .number(round3(percentile(fromSQLite.sorted(), 50))),
            ]),
            "stream_wake": streamed.isEmpty ? .null : .object(streamed),
        ])
    }
}

/// Wakes `session` once, streaming or whole, and checks that every event came, in order and
/// without a gap. Memory is the peak of this process's resident set over this wake alone.
private func measuredWake(
    _ log: SessionLog, _ session: SessionID, streaming: Bool, expecting source: SessionSnapshot.Source
) async throws
    -> JSONValue
{
    // What an earlier wake freed goes back to the kernel, so each wake starts from its own floor.
    _ = malloc_trim(0)
    let before = ResidentMemory.currentMB
    let peakIsThisWake = ResidentMemory.resetPeak()
    let clock = ContinuousClock()
    let started = clock.now
    var next: Int64 = 1
    var bytes = 0
    let check = { (events: [StoredEvent]) throws in
        for event in events {
            guard event.seq == next else { throw ValidationError("wake handed over seq \(event.seq) where \(next) was due") }
            next += 1
            bytes += event.json.utf8.count
        }
    }
    let woken: (lastSeq: Int64, source: SessionSnapshot.Source)
    if streaming {
        let summary = try await log.wake(session, check)
        woken = (summary.lastSeq, summary.source)
    } else {
        let snapshot = try await log.wake(session)
        try check(snapshot.events)
        woken = (snapshot.lastSeq, snapshot.source)
    }
    let seconds = (clock.now - started).seconds
    let peak = ResidentMemory.peakMB
    guard next - 1 == woken.lastSeq, woken.source == source else {
        throw ValidationError("wake returned \(next - 1) of \(woken.lastSeq) events from \(woken.source), expected all from \(source)")
    }
    return .object([
        "seconds": .number(round3(seconds)),
        "events_per_second": .number(round3(Double(next - 1) / seconds)),
        "event_megabytes": .number(round3(Double(bytes) / 1_048_576)),
        "peak_rss_growth_mb": .number(round3(peak - before)),
        "peak_rss_mb": .number(round3(peak)),
        "peak_is_this_wake": .bool(peakIsThisWake),
    ])
}

/// glibc's, which Swift's Glibc module does not export: hands freed heap back to the kernel.
@_silgen_name("malloc_trim") private func malloc_trim(_ pad: Int) -> Int32

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[index]
}

func round3(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

/// p50, p95 and p99 of sorted samples, as the benches print them.
func latencySummary(_ sorted: [Double]) -> JSONValue {
    .object([
        "p50": .number(round3(percentile(sorted, 50))), "p95": .number(round3(percentile(sorted, 95))),
        "p99": .number(round3(percentile(sorted, 99))),
    ])
}
