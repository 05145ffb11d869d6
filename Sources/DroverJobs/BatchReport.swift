import DroverCore
import Foundation

/// The report of a batch: `report.csv` (one row per item), `report.json` (everything) and
/// `summary.md` (for people), in the job's report folder.
public struct BatchReport: Sendable {
    public let plan: BatchPlan
    public let outcomes: [ItemOutcome]

    public init(plan: BatchPlan, outcomes: [ItemOutcome]) {
        self.plan = plan
        self.outcomes = outcomes.sorted { $0.position < $1.position }
    }

    public var counts: [ItemOutcome.Status: Int] {
        outcomes.reduce(into: [:]) { $0[$1.status, default: 0] += 1 }
    }

    /// True when every item succeeded.
    public var succeeded: Bool { outcomes.allSatisfy { $0.status == .succeeded } }

    /// Output columns: the job's `output.columns`, or every key any item produced.
    public var columns: [String] {
        if !plan.spec.output.columns.isEmpty { return plan.spec.output.columns }
        return Array(Set(outcomes.flatMap { $0.columns.keys })).sorted()
    }

    @discardableResult
    public func write() throws -> [URL] {
        let directory = plan.spec.reportDirectory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files = [
            (directory.appendingPathComponent("report.csv"), csv()),
            (directory.appendingPathComponent("report.json"), json()),
            (directory.appendingPathComponent("summary.md"), markdown()),
        ]
        for (url, text) in files { try Data(text.utf8).write(to: url, options: .atomic) }
        return files.map(\.0)
    }

    static func cell(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        return JobItems.flatten(value)
    }

    public func csv() -> String {
        var lines = [
            CSVTable.line(["item", "status"] + columns + ["attempts", "session_id", "duration_seconds", "input_tokens", "output_tokens", "error"])
        ]
        for outcome in outcomes {
            lines.append(
                CSVTable.line(
                    [outcome.itemId, outcome.status.rawValue] + columns.map { Self.cell(outcome.columns[$0]) } + [
                        String(outcome.attempts), outcome.sessionId ?? "", outcome.durationSeconds.map { String(format: "%.3f", $0) } ?? "",
                        String(outcome.inputTokens), String(outcome.outputTokens), outcome.error ?? "",
                    ]))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        struct Document: Encodable {
            let batch_id: String
            let job: String
            let job_file: String
            let model: String
            let generated_at: String
            let counts: [String: Int]
            let columns: [String]
            let items: [ItemOutcome]
        }
        let document = Document(
            batch_id: plan.batchId, job: plan.spec.name, job_file: plan.spec.file.path, model: plan.modelLabel,
            generated_at: Timestamp.now(), counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }),
            columns: columns, items: outcomes)
        return ((try? encoder.encode(document)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }

    public func markdown() -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
        }
        let counts = counts
        var text = "# \(plan.spec.name): batch report\n\n"
        if let description = plan.spec.description { text += description.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }
        text += "- batch: `\(plan.batchId)`\n- model: \(plan.modelLabel)\n- generated: \(Timestamp.now())\n"
        let order: [ItemOutcome.Status] = [.succeeded, .failed, .timedOut, .skipped, .running, .pending]
        text +=
            "- items: \(outcomes.count) (" + order.compactMap { status in counts[status].map { "\($0) \(status.rawValue)" } }.joined(separator: ", ")
            + ")\n"
        let earlier = outcomes.filter(\.fromEarlierRun).count
        if earlier > 0 { text += "- \(earlier) finished in an earlier run and were not redone\n" }
        let tokens = outcomes.reduce(0) { $0 + $1.inputTokens + $1.outputTokens }
        let active = outcomes.reduce(0.0) { $0 + $1.activeSeconds }
        text += "- usage: \(tokens) tokens, \(String(format: "%.1f", active)) s of session running time\n\n"
        text += "| item | status | " + columns.map(escape).joined(separator: " | ") + (columns.isEmpty ? "" : " | ") + "attempts | seconds |\n"
        text += "|" + String(repeating: "---|", count: 4 + columns.count) + "\n"
        for outcome in outcomes {
            let cells = columns.map { escape(String(Self.cell(outcome.columns[$0]).prefix(80))) }
            text +=
                "| \(escape(outcome.itemId)) | \(outcome.status.rawValue) | " + cells.joined(separator: " | ") + (cells.isEmpty ? "" : " | ")
                + "\(outcome.attempts) | \(outcome.durationSeconds.map { String(format: "%.1f", $0) } ?? "") |\n"
        }
        let problems = outcomes.filter { $0.status != .succeeded }
        if !problems.isEmpty {
            text += "\n## Needs attention\n\n"
            for outcome in problems {
                text += "- **\(escape(outcome.itemId))** (\(outcome.status.rawValue)): \(escape(outcome.error ?? "no detail"))"
                if let session = outcome.sessionId { text += " — `drover sessions replay \(session)`" }
                text += "\n"
            }
        }
        return text
    }
}
