import ArgumentParser
import DroverCore
import DroverDatabase
import DroverRuntime
import DroverSessionLog
import Foundation

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Reports over everything Drover has recorded.",
        subcommands: [Usage.self]
    )

    struct Usage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokens, active time and cost per session, batch, deployment and workspace.",
            discussion: """
                Active time is time in the running status only: waiting for input, for a client's
                tool result, or for a retry does not count. Tokens are summed over every model
                request, including turns cut short by a crash. Read from the SQLite mirror, and from
                Redis for events no recorder has mirrored yet, so it is right with or without one.

                Cost is tokens at the rates of each session's agent model, plus running time at the
                runtime rate ($0.08 a session-hour, as the hosted product charges). The rates are
                list prices built in; --print-rates writes them, and --rates FILE replaces them. A
                model with no rate is named, and its tokens are left out of the cost. Sessions the
                scripted model answered are priced as their agent's model would have been.
                """
        )

        @Option(help: "Group by session, batch, deployment, workspace, or all.") var by = "all"
        @Option(help: "A rates file (the format --print-rates writes) instead of the built-in list prices.") var rates: String?
        @Flag(help: "Print the rates in use, as a rates file, and stop.") var printRates = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard ["session", "batch", "deployment", "workspace", "all"].contains(by) else {
                throw ValidationError("--by: use session, batch, deployment, workspace or all")
            }
        }

        func run() async throws {
            if printRates {
                try await reportingErrors { print(try loadRates().yaml, terminator: "") }
                return
            }
            try await withRuntime(announce: false) { runtime in
                let rates = try loadRates()
                let database = try runtime.database()
                let unmirrored = try await Recorder.unmirrored(runtime.redis)
                var sessions = try await database.sessionUsage(unmirrored: unmirrored)
                // A session no recorder has seen has its agent snapshot in Redis only.
                for index in sessions.indices where sessions[index].model == nil {
                    guard let id = try? SessionID(sessions[index].session), let agent = try? await runtime.sessionLog.agentJSON(id) else { continue }
                    sessions[index].model = JSONValue.decode(agent).objectValue?["model"]?.stringValue
                }
                let groups = UsageGroups(sessions: sessions, rates: rates)
                if json {
                    var out: [String: JSONValue] = ["total": groups.total.json]
                    if by == "all" || by == "session" {
                        out["sessions"] = .array(
                            sessions.map {
                                var fields = UsageGroups.Total($0, rates: rates).json(key: "session", $0.session).objectValue ?? [:]
                                fields["model"] = $0.model.map(JSONValue.string) ?? .null
                                fields["unmirrored_events"] = .number(Double($0.unmirroredEvents))
                                return .object(fields)
                            })
                    }
                    if by == "all" || by == "batch" { out["batches"] = groups.json(groups.byOrigin("batch"), key: "batch") }
                    if by == "all" || by == "deployment" { out["deployments"] = groups.json(groups.byOrigin("deployment"), key: "deployment") }
                    if by == "all" || by == "workspace" { out["workspaces"] = groups.json(groups.byWorkspace, key: "workspace") }
                    out["rates"] = .object([
                        "runtime_per_session_hour": .number(rates.runtimePerSessionHour), "source": .string(self.rates ?? "built-in"),
                    ])
                    print(try encodeJSON(JSONValue.object(out)))
                    return
                }
                let header = ["", "SESSIONS", "MODEL REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS", "ACTIVE", "COST (USD)"]
                func rows(_ groups: [(String, UsageGroups.Total)]) -> [[String]] { groups.map { [$0.0] + $0.1.cells } }
                var sections: [(String, [[String]])] = []
                if by == "all" || by == "workspace" { sections.append(("WORKSPACE", rows(groups.byWorkspace))) }
                if by == "all" || by == "batch" { sections.append(("BATCH", rows(groups.byOrigin("batch")))) }
                if by == "all" || by == "deployment" { sections.append(("DEPLOYMENT", rows(groups.byOrigin("deployment")))) }
                if by == "session" { sections.append(("SESSION", sessions.map { [$0.session] + UsageGroups.Total($0, rates: rates).cells })) }
                for (title, body) in sections {
                    var head = header
                    head[0] = title
                    printTable(header: head, rows: body.isEmpty ? [["(none)", "0", "0", "0", "0", "0s", "0.00"]] : body)
                    print("")
                }
                print(
                    "total: " + groups.total.cells.enumerated().map { "\(header[$0.offset + 1].lowercased()) \($0.element)" }.joined(separator: ", "))
                let unpriced = groups.total.unpriced.sorted()
                if !unpriced.isEmpty {
                    print(
                        "not in the cost: the tokens of \(unpriced.joined(separator: ", ")), which have no rate. Fix: add them to a rates file (--print-rates writes one) and pass --rates FILE"
                    )
                }
                let pending = sessions.reduce(0) { $0 + $1.unmirroredEvents }
                if pending > 0 { print("counted \(pending) events from Redis that no recorder has mirrored yet") }
            }
        }

        func loadRates() throws -> UsageRates {
            try rates.map { try UsageRates.load(URL(fileURLWithPath: $0)) } ?? .embedded
        }
    }
}

/// Sums of session usage, and their cost, by origin and by workspace.
struct UsageGroups {
    struct Total {
        var sessions = 0
        var modelRequests = 0
        var inputTokens = 0
        var outputTokens = 0
        var activeSeconds = 0.0
        var tokenCost = 0.0
        var runtimeCost = 0.0
        /// Models whose tokens have no rate, and so are not in `tokenCost`.
        var unpriced: Set<String> = []

        init() {}

        init(_ usage: MeteredSession, rates: UsageRates) {
            add(usage, rates: rates)
        }

        mutating func add(_ usage: MeteredSession, rates: UsageRates) {
            sessions += 1
            modelRequests += usage.modelRequests
            inputTokens += usage.inputTokens
            outputTokens += usage.outputTokens
            activeSeconds += usage.activeSeconds
            let cost = rates.cost(of: usage)
            runtimeCost += cost.runtime
            if let tokens = cost.tokens {
                tokenCost += tokens
            } else if usage.inputTokens + usage.outputTokens + usage.cacheReadInputTokens + usage.cacheCreationInputTokens > 0 {
                unpriced.insert(usage.model ?? "an unknown model")
            }
        }

        var cost: Double { tokenCost + runtimeCost }

        var cells: [String] {
            [
                String(sessions), String(modelRequests), String(inputTokens), String(outputTokens), formatMilliseconds(Int64(activeSeconds * 1000)),
                Self.dollars(cost) + (unpriced.isEmpty ? "" : " + ?"),
            ]
        }

        /// Cents for sums worth reading as money, four places below a cent.
        static func dollars(_ value: Double) -> String {
            String(format: value >= 0.01 || value == 0 ? "%.2f" : "%.4f", value)
        }

        var json: JSONValue {
            .object([
                "sessions": .number(Double(sessions)), "model_requests": .number(Double(modelRequests)),
                "input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens)),
                "active_seconds": .number((activeSeconds * 1000).rounded() / 1000),
                "cost_usd": .object([
                    "tokens": .number(Self.rounded(tokenCost)), "runtime": .number(Self.rounded(runtimeCost)), "total": .number(Self.rounded(cost)),
                ]),
                "unpriced_models": .array(unpriced.sorted().map(JSONValue.string)),
            ])
        }

        /// To a millionth of a dollar: sums of many sessions stay exact enough to compare.
        static func rounded(_ value: Double) -> Double { (value * 1_000_000).rounded() / 1_000_000 }

        func json(key: String, _ id: String) -> JSONValue {
            guard case .object(var fields) = json else { return json }
            fields[key] = .string(id)
            return .object(fields)
        }
    }

    let sessions: [MeteredSession]
    let rates: UsageRates

    var total: Total {
        sessions.reduce(into: Total()) { $0.add($1, rates: rates) }
    }

    func byOrigin(_ kind: String) -> [(String, Total)] {
        group(sessions.filter { $0.originKind == kind }) { $0.originId ?? "-" }
    }

    var byWorkspace: [(String, Total)] {
        group(sessions) { $0.workspace }
    }

    func group(_ list: [MeteredSession], by key: (MeteredSession) -> String) -> [(String, Total)] {
        var totals: [String: Total] = [:]
        for usage in list { totals[key(usage), default: Total()].add(usage, rates: rates) }
        return totals.sorted { $0.key < $1.key }
    }

    func json(_ groups: [(String, Total)], key: String) -> JSONValue {
        .array(groups.map { $0.1.json(key: key, $0.0) })
    }
}
