import DroverCore
import Foundation

/// What became of one item: stored as the batch item's `result`, and one row of the report.
public struct ItemOutcome: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case pending, running, succeeded, failed
        case timedOut = "timed_out"
        /// Not started because the budget was spent; a later run picks it up.
        case skipped
        /// Stopped by `drover batch cancel`; only `--retry-failed` (or `--item`) runs it again.
        case cancelled

        /// Finished items are never redone by a rerun (unless asked to retry failures).
        public var isFinished: Bool { self == .succeeded || self == .failed || self == .timedOut || self == .cancelled }
    }

    public var itemId: String
    public var key: String
    public var position: Int
    public var status: Status
    public var attempts: Int = 0
    /// Every session started for the item, oldest first; the last one is the current one.
    public var sessions: [String] = []
    public var columns: [String: JSONValue] = [:]
    public var error: String?
    public var finalMessage: String?
    public var inputTokens: Int = 0
    public var outputTokens: Int = 0
    public var activeSeconds: Double = 0
    public var startedAt: String?
    public var finishedAt: String?
    public var durationSeconds: Double?
    /// Set when this run found the item finished by an earlier run.
    public var fromEarlierRun: Bool = false

    /// What earlier runs made of the item before `--retry-failed` started it over, oldest first
    /// (nil, and left out of the JSON, until then).
    public var earlier: [EarlierResult]?

    public struct EarlierResult: Sendable, Codable, Equatable {
        public var status: Status
        public var attempts: Int
        public var sessions: [String]
        public var error: String?
        public var finishedAt: String?

        enum CodingKeys: String, CodingKey {
            case status, attempts, sessions, error
            case finishedAt = "finished_at"
        }
    }

    public var sessionId: String? { sessions.last }

    /// Unfinished, with a session to continue: an interruption or a crash left it.
    public var isResumable: Bool { (status == .running || status == .pending) && sessionId != nil }

    /// For `--retry-failed`: the finished result goes to `earlier`, and the item starts again
    /// with all its attempts.
    public mutating func startOver() {
        earlier = (earlier ?? []) + [EarlierResult(status: status, attempts: attempts, sessions: sessions, error: error, finishedAt: finishedAt)]
        status = .pending
        attempts = 0
        sessions = []
        error = nil
        columns = [:]
        finalMessage = nil
        finishedAt = nil
        durationSeconds = nil
    }

    enum CodingKeys: String, CodingKey {
        case itemId = "item_id", key, position, status, attempts, sessions, columns, error
        case finalMessage = "final_message"
        case inputTokens = "input_tokens", outputTokens = "output_tokens", activeSeconds = "active_seconds"
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        case fromEarlierRun = "from_earlier_run", earlier
    }

    public init(itemId: String, key: String, position: Int, status: Status) {
        self.itemId = itemId
        self.key = key
        self.position = position
        self.status = status
    }

    /// The stored `result`: what `JSONEncoder` with sorted keys writes, built by hand, since a
    /// batch writes it twice per item and the encoder's generic containers were a thirtieth of
    /// the batch's CPU. `ItemOutcomeTests` holds the two to the same bytes.
    public var json: String {
        var fields: [String: JSONValue] = [
            "item_id": .string(itemId), "key": .string(key), "position": .number(Double(position)), "status": .string(status.rawValue),
            "attempts": .number(Double(attempts)), "sessions": .array(sessions.map(JSONValue.string)), "columns": .object(columns),
            "input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens)),
            "active_seconds": .number(activeSeconds), "from_earlier_run": .bool(fromEarlierRun),
        ]
        fields["error"] = error.map(JSONValue.string)
        fields["final_message"] = finalMessage.map(JSONValue.string)
        fields["started_at"] = startedAt.map(JSONValue.string)
        fields["finished_at"] = finishedAt.map(JSONValue.string)
        fields["duration_seconds"] = durationSeconds.map(JSONValue.number)
        fields["earlier"] = earlier.map { results in
            .array(
                results.map { result in
                    var earlier: [String: JSONValue] = [
                        "status": .string(result.status.rawValue), "attempts": .number(Double(result.attempts)),
                        "sessions": .array(result.sessions.map(JSONValue.string)),
                    ]
                    earlier["error"] = result.error.map(JSONValue.string)
                    earlier["finished_at"] = result.finishedAt.map(JSONValue.string)
                    return .object(earlier)
                })
        }
        // A number JSON cannot hold (an infinite duration) fails as the encoder did.
        return (try? JSONValue.object(fields).jsonBytes()).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    public static func decode(_ json: String) -> ItemOutcome? {
        try? JSONDecoder().decode(ItemOutcome.self, from: Data(json.utf8))
    }
}

/// Timestamps as the session log writes them.
enum Timestamp {
    static func now() -> String {
        UTCTimestamp.format(Date(), fractionDigits: 3)
    }
}
