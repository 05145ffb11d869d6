import ArgumentParser
import DroverCore
import DroverDatabase
import DroverRuntime
import Foundation

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Reports over everything Drover has recorded.",
        subcommands: [Usage.self]
    )

    struct Usage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokens and active time per session, batch, deployment and workspace.",
            discussion: """
                Active time is time in the running status only: waiting for input, for a client's
                tool result, or for a retry does not count. Tokens are summed over every model
                request, including turns cut short by a crash. Read from the SQLite mirror, so the
                recorder must have caught up (`drover recorder status`).
                """
        )

        @Option(help: "Group by session, batch, deployment, workspace, or all.") var by = "all"
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard ["session", "batch", "deployment", "workspace", "all"].contains(by) else {
                throw ValidationError("--by: use session, batch, deployment, workspace or all")
            }
        }

        func run() async throws {
            try await withRuntime(announce: false) { runtime in
                let sessions = try await runtime.database().sessionUsage()
                let groups = UsageGroups(sessions: sessions)
                if json {
                    var out: [String: JSONValue] = ["total": groups.total.json]
                    if by == "all" || by == "session" {
                        out["sessions"] = .array(sessions.map { UsageGroups.Total($0).json(key: "session", $0.session) })
                    }
                    if by == "all" || by == "batch" { out["batches"] = groups.json(groups.byOrigin("batch"), key: "batch") }
                    if by == "all" || by == "deployment" { out["deployments"] = groups.json(groups.byOrigin("deployment"), key: "deployment") }
                    if by == "all" || by == "workspace" { out["workspaces"] = groups.json(groups.byWorkspace, key: "workspace") }
                    print(try encodeJSON(JSONValue.object(out)))
                    return
                }
                let header = ["", "SESSIONS", "MODEL REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS", "ACTIVE"]
                func rows(_ groups: [(String, UsageGroups.Total)]) -> [[String]] { groups.map { [$0.0] + $0.1.cells } }
                var sections: [(String, [[String]])] = []
                if by == "all" || by == "workspace" { sections.append(("WORKSPACE", rows(groups.byWorkspace))) }
                if by == "all" || by == "batch" { sections.append(("BATCH", rows(groups.byOrigin("batch")))) }
                if by == "all" || by == "deployment" { sections.append(("DEPLOYMENT", rows(groups.byOrigin("deployment")))) }
                if by == "session" { sections.append(("SESSION", sessions.map { [$0.session] + UsageGroups.Total($0).cells })) }
                for (title, body) in sections {
                    var head = header
                    head[0] = title
                    printTable(header: head, rows: body.isEmpty ? [["(none)", "0", "0", "0", "0", "0s"]] : body)
                    print("")
                }
                print(
                    "total: " + groups.total.cells.enumerated().map { "\(header[$0.offset + 1].lowercased()) \($0.element)" }.joined(separator: ", "))
            }
        }
    }
}

/// Sums of session usage by origin and by workspace.
struct UsageGroups {
    struct Total {
        var sessions = 0
        var modelRequests = 0
        var inputTokens = 0
        var outputTokens = 0
        var activeSeconds = 0.0

        init() {}

        init(_ usage: MeteredSession) {
            add(usage)
        }

        mutating func add(_ usage: MeteredSession) {
            sessions += 1
            modelRequests += usage.modelRequests
            inputTokens += usage.inputTokens
            outputTokens += usage.outputTokens
            activeSeconds += usage.activeSeconds
        }

        var cells: [String] {
            [String(sessions), String(modelRequests), String(inputTokens), String(outputTokens), formatMilliseconds(Int64(activeSeconds * 1000))]
        }

        var json: JSONValue {
            .object([
                "sessions": .number(Double(sessions)), "model_requests": .number(Double(modelRequests)),
                "input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens)),
                "active_seconds": .number((activeSeconds * 1000).rounded() / 1000),
            ])
        }

        func json(key: String, _ id: String) -> JSONValue {
            guard case .object(var fields) = json else { return json }
            fields[key] = .string(id)
            return .object(fields)
        }
    }

    let sessions: [MeteredSession]

    var total: Total {
        sessions.reduce(into: Total()) { $0.add($1) }
    }

    func byOrigin(_ kind: String) -> [(String, Total)] {
        group(sessions.filter { $0.originKind == kind }) { $0.originId ?? "-" }
    }

    var byWorkspace: [(String, Total)] {
        group(sessions) { $0.workspace }
    }

    func group(_ list: [MeteredSession], by key: (MeteredSession) -> String) -> [(String, Total)] {
        var totals: [String: Total] = [:]
        for usage in list { totals[key(usage), default: Total()].add(usage) }
        return totals.sorted { $0.key < $1.key }
    }

    func json(_ groups: [(String, Total)], key: String) -> JSONValue {
        .array(groups.map { $0.1.json(key: key, $0.0) })
    }
}
