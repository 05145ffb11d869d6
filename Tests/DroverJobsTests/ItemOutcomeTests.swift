import DroverCore
import Foundation
import Testing

@testable import DroverJobs

@Suite("A batch item's stored result")
struct ItemOutcomeTests {
    /// What the hand-built JSON must equal: the Codable conformance, encoded as it was stored.
    func encoded(_ outcome: ItemOutcome) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(outcome), as: UTF8.self)
    }

    @Test("is byte for byte what JSONEncoder writes, with every field set, with none, and with odd text, and decodes back")
    func sameBytesAsTheEncoder() throws {
        var full = ItemOutcome(itemId: "alice/hw1 \"final\"", key: "k/1", position: 7, status: .timedOut)
        full.attempts = 3
        full.sessions = ["sesn_01", "sesn_02"]
        full.columns = ["grade": .number(8.5), "notes": .array([.string("a\\b\n"), .null, .bool(true)]), "nested": .object(["x": 1])]
        full.error = "no result after 10 s </script> \u{1}"
        full.finalMessage = "Graded: é, 😀"
        full.inputTokens = 1234
        full.outputTokens = 56
        full.activeSeconds = 0.1 + 0.2
        full.startedAt = "2026-12-05T10:00:00.123456Z"
        full.finishedAt = "2026-12-05T10:00:01Z"
        full.durationSeconds = 1.25
        full.fromEarlierRun = true
        full.earlier = [
            .init(status: .failed, attempts: 2, sessions: ["sesn_00"], error: "boom", finishedAt: nil),
            .init(status: .succeeded, attempts: 1, sessions: [], error: nil, finishedAt: "2026-12-04T00:00:00Z"),
        ]
        let empty = ItemOutcome(itemId: "", key: "", position: 0, status: .pending)
        for outcome in [full, empty] {
            #expect(outcome.json == (try encoded(outcome)))
            #expect(ItemOutcome.decode(outcome.json) == outcome)
        }
    }
}
