import ArgumentParser
import DroverBrain
import DroverConsole
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRuntime
import DroverSessionLog
import Foundation

struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "Inspect session logs: list, show, events, export, replay.",
        subcommands: [List.self, Show.self, Events.self, Export.self, Replay.self, Create.self, Send.self, Tail.self, Terminate.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sessions the SQLite mirror knows, most recent first, with their mirrored status.",
            discussion: "Filters combine. Page with --limit and --offset; the web console (/console/sessions) shows live status.")

        @Option(help: "How many.") var limit = 50
        @Option(help: "Skip this many (the next page: --offset LIMIT).") var offset = 0
        @Option(help: "running, idle, rescheduling or terminated.") var status: String?
        @Option(help: "The API agent id (agent_...).") var agent: String?
        @Option(help: "Sessions of this batch.") var batch: String?
        @Option(help: "Sessions this deployment's runs started.") var deployment: String?
        @Option(help: "The workspace's name (default, or a key's workspace).") var workspace: String?
        @Option(help: "Created at or after this instant (2026-12-05T09:00:00Z, or a date).") var since: String?
        @Option(help: "Created before this instant.") var until: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit: use 1 to 10000") }
            guard offset >= 0 else { throw ValidationError("--offset: use 0 or more") }
            if let status, !["running", "idle", "rescheduling", "terminated"].contains(status) {
                throw ValidationError("--status: '\(status)' is not running, idle, rescheduling or terminated")
            }
            _ = try Self.instant(since, "--since")
            _ = try Self.instant(until, "--until")
        }

        /// An RFC 3339 instant, or a day (its start, UTC), as the mirror's `created_at` text.
        static func instant(_ text: String?, _ option: String) throws -> String? {
            guard let text else { return nil }
            let full = ISO8601DateFormatter()
            let day = ISO8601DateFormatter()
            day.formatOptions = [.withFullDate]
            guard let date = full.date(from: text) ?? day.date(from: text) else {
                throw ValidationError("\(option): '\(text)' is not an instant; use 2026-12-05T09:00:00Z or 2026-12-05")
            }
            return ControlPlaneStore.timestamp(date)
        }

        func run() async throws {
            try await withRuntime { runtime in
                var filter = MirrorDatabase.SessionFilter()
                (filter.status, filter.agent, filter.batch, filter.deployment) = (status, agent, batch, deployment)
                filter.workspace = workspace.map(ControlPlaneStore.workspaceID(named:))
                filter.createdSince = try Self.instant(since, "--since")
                filter.createdUntil = try Self.instant(until, "--until")
                let rows = try await runtime.database().sessions(filter, limit: limit, offset: offset)
                if json {
                    print(try encodeJSON(rows))
                } else if rows.isEmpty {
                    print(offset > 0 || filter.isEmpty == false ? "no sessions match" : "no sessions recorded yet (is `drover recorder` running?)")
                } else {
                    printTable(
                        header: ["SESSION", "STATUS", "EVENTS", "LAST EVENT"],
                        rows: rows.map {
                            [$0.id, $0.status, "\($0.lastSeq)", $0.lastEventAt ?? "-"]
                        })
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A session's state in Redis and in SQLite, as JSON.")
        @Argument(help: "The session id.") var session: String

        func run() async throws {
            try await withRuntime { runtime in
                let id = try SessionID(session)
                let meta = try await runtime.sessionLog.meta(id)
                let row = try await runtime.database().session(id.rawValue)
                guard meta != nil || row != nil else { throw SessionLogError.sessionNotFound(session) }
                var out: [String: JSONValue] = ["id": .string(session)]
                if let meta {
                    out["redis"] = .object([
                        "last_seq": .number(Double(meta.lastSeq)), "fence_epoch": .number(Double(meta.epoch)),
                        "status": .string(meta.status), "trimmed_through": .number(Double(meta.trimmedThrough)),
                    ])
                } else {
                    out["redis"] = .null
                }
                if let row {
                    out["sqlite"] = .object([
                        "last_seq": .number(Double(row.lastSeq)), "status": .string(row.status),
                        "last_event_at": row.lastEventAt.map(JSONValue.string) ?? .null,
                    ])
                } else {
                    out["sqlite"] = .null
                }
                // What its sandbox asked of the egress proxy, allowed and refused.
                out["egress"] = .array(
                    try await runtime.database().egressUsage(session: id.rawValue).map { row in
                        .object([
                            "host": .string(row.host), "port": .number(Double(row.port)), "verdict": .string(row.verdict),
                            "requests": .number(Double(row.requests)), "bytes_sent": .number(Double(row.bytesSent)),
                            "bytes_received": .number(Double(row.bytesReceived)),
                        ])
                    })
                print(try encodeJSON(JSONValue.object(out)))
            }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print events as JSON lines.")
        @Argument(help: "The session id.") var session: String
        @Option(help: "Only events after this seq.") var after: Int64 = 0
        @Option(help: "At most this many.") var limit = 1000
        @Option(name: .customLong("type"), help: "Only these event types (repeatable).") var types: [String] = []

        func run() async throws {
            try await withRuntime { runtime in
                let log = try runtime.sessionLog
                let wanted = Set(types)
                for event in try await log.read(try SessionID(session), afterSeq: after, limit: limit)
                where wanted.isEmpty || wanted.contains(event.type) {
                    print(event.json)
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a session's whole log: as JSONL, or as one self-contained HTML file to share (its timeline, and the JSONL inside).")
        @Argument(help: "The session id.") var session: String
        @Option(help: "jsonl (one wire event per line) or html (one file that opens anywhere with no network).") var format = "jsonl"
        @Option(name: [.short, .long], help: "Write to this file instead of standard output.") var output: String?

        func validate() throws {
            guard ["jsonl", "html"].contains(format) else {
                throw ValidationError("--format: '\(format)' is not a format; use jsonl or html")
            }
        }

        func run() async throws {
            try await withRuntime { runtime in
                let id = try SessionID(session)
                guard format == "jsonl" else {
                    // The timeline page is built whole; JSONL streams, for a log of any length.
                    let snapshot = try await runtime.sessionLog.wake(id)
                    let jsonl = String(decoding: Self.jsonl(snapshot.events), as: UTF8.self)
                    let timeline = SessionTimeline(session: session, status: "\(snapshot.status)", events: snapshot.events)
                    try write(Data(TimelinePage.render(timeline, jsonl: jsonl).utf8), count: snapshot.events.count)
                    return
                }
                guard let output else {
                    _ = try await runtime.sessionLog.wake(id) { events in
                        try FileHandle.standardOutput.write(contentsOf: Self.jsonl(events))
                    }
                    return
                }
                // Written beside the target and renamed into place: a reader never sees half a log.
                let target = URL(fileURLWithPath: output)
                let partial = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).\(getpid()).partial")
                let descriptor = open(partial.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else {
                    throw ValidationError(
                        "--output: cannot create \(partial.path): \(String(cString: strerror(errno))); check that the directory exists and is writable"
                    )
                }
                do {
                    let file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
                    var count = 0
                    _ = try await runtime.sessionLog.wake(id) { events in
                        try file.write(contentsOf: Self.jsonl(events))
                        count += events.count
                    }
                    try file.close()
                    guard rename(partial.path, target.path) == 0 else {
                        throw ValidationError("--output: cannot write \(output): \(String(cString: strerror(errno)))")
                    }
                    note("wrote \(count) events of \(session) to \(output)")
                } catch {
                    try? FileManager.default.removeItem(at: partial)
                    throw error
                }
            }
        }

        private static func jsonl(_ events: [StoredEvent]) -> Data {
            var data = Data()
            data.reserveCapacity(events.reduce(0) { $0 + $1.json.utf8.count + 1 })
            for event in events {
                data.append(contentsOf: event.json.utf8)
                data.append(0x0A)
            }
            return data
        }

        private func write(_ data: Data, count: Int) throws {
            if let output {
                try data.write(to: URL(fileURLWithPath: output), options: .atomic)
                note("wrote \(count) events of \(session) to \(output)")
            } else {
                try FileHandle.standardOutput.write(contentsOf: data)
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a session's timeline as a person reads it.")
        @Argument(help: "The session id.") var session: String
        @Option(help: "Characters per line for message and tool text.") var width = 100
        @Option(help: "Lines of a long message or tool output to show (the rest is counted).") var maxLines = 20
        @Flag(help: "Show messages and tool input and output whole, however long.") var full = false

        func run() async throws {
            try await withRuntime { runtime in
                let snapshot = try await runtime.sessionLog.wake(try SessionID(session))
                print("session \(session): \(snapshot.events.count) events, status \(snapshot.status) (from \(snapshot.source.rawValue))")
                let timeline = SessionTimeline(session: session, status: "\(snapshot.status)", events: snapshot.events)
                print(TimelineText(width: width, maxLines: maxLines, full: full).render(timeline))
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an empty session log and print its id (the API creates sessions with an agent).")

        func run() async throws {
            try await withRuntime { runtime in
                let id = SessionID.make()
                try await runtime.sessionLog.create(id)
                print(id.rawValue)
            }
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append client events, given as the API's JSON body, to a session, and queue its turn.")
        @Argument(help: "The session id.") var session: String
        @Argument(help: #"JSON: {"events": [...]}, or '-' for standard input."#) var body: String

        func run() async throws {
            let text = body == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : body
            try await withRuntime { runtime in
                let events = try NewEvent.parseClientEvents(text)
                let id = try SessionID(session)
                let delivery = try await SessionInbox(log: runtime.sessionLog, queue: TaskQueue(redis: runtime.redis)).send(events, to: id)
                let result = delivery.appended
                print("appended seq \(result.firstSeq)...\(result.lastSeq) at \(result.processedAt)")
                if let task = delivery.turn {
                    print("turn task \(task.taskId) (\(task.outcome.rawValue))")
                }
            }
        }
    }
}
