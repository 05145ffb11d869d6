import DroverTesting
import Foundation
import Testing

@testable import DroverSchedule

/// The project's venv python (scripts/setup installs croniter there).
let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let schedulePython: String? = {
    let python = projectRoot.appendingPathComponent(".venv/bin/python").path
    return FileManager.default.isExecutableFile(atPath: python) ? python : nil
}()

/// Random cron expressions and instants, with a fixed seed so a failure can be replayed.
struct CronCaseGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    mutating func pick<T>(_ values: [T]) -> T { values[int(0...(values.count - 1))] }

    mutating func field(_ range: ClosedRange<Int>, names: [String] = [], hot: [Int] = []) -> String {
        func value(_ gen: inout CronCaseGenerator) -> String {
            if !hot.isEmpty, gen.int(0...2) == 0 { return String(gen.pick(hot)) }
            if !names.isEmpty, gen.int(0...3) == 0 { return gen.pick(names) }
            return String(gen.int(range))
        }
        switch int(0...9) {
        case 0, 1, 2: return "*"
        case 3, 4: return value(&self)
        case 5:
            return (0..<int(2...3)).map { _ in value(&self) }.joined(separator: ",")
        case 6:
            // croniter reads a one-value range such as 17-17 as '*' (its quirk), so none here.
            let low = int(range.lowerBound...(range.upperBound - 1))
            return "\(low)-\(int((low + 1)...range.upperBound))"
        case 7:
            return "*/\(int(2...max(2, range.count / 3)))"
        case 8:
            let low = int(range.lowerBound...(range.upperBound - 1))
            return "\(low)-\(int((low + 1)...range.upperBound))/\(int(1...4))"
        default:
            return "\(value(&self)),\(int(range.lowerBound...(range.upperBound - 1)))-\(range.upperBound)"
        }
    }

    mutating func expression() -> String {
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        return [
            field(0...59, hot: [0, 15, 30, 45]),
            // Hours 1-3 are where New York and Berlin change their clocks.
            field(0...23, hot: [1, 2, 3]),
            field(1...31, hot: [1, 8, 13, 29, 30, 31]),
            int(0...2) == 0 ? field(1...12, names: months, hot: [3, 10, 11]) : "*",
            field(0...7, names: days, hot: [0, 7]),
        ].joined(separator: " ")
    }
}

/// DST transitions in the test zones, 2024-2028 (UTC epoch seconds), to aim instants at.
func transitions(_ zone: TimeZone) -> [Date] {
    var result: [Date] = []
    var cursor = Date(timeIntervalSince1970: 1_704_067_200)  // 2024-01-01
    while let next = zone.nextDaylightSavingTimeTransition(after: cursor), next.timeIntervalSince1970 < 1_861_920_000 {
        result.append(next)
        cursor = next
    }
    return result
}

@Suite("Cron oracle")
struct CronOracleTests {
    struct Case: Codable {
        let expression: String
        let timezone: String
        let start: Double
        let count: Int
    }

    enum Answer: Decodable, Equatable {
        case instants([Int])
        case error(String)

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let instants = try? container.decode([Int].self) {
                self = .instants(instants)
            } else {
                self = .error(try container.decode([String: String].self)["error"] ?? "")
            }
        }
    }

    /// croniter treats a day field that lists every value (`0-7`, `1,1-31`) as restricted when
    /// deciding OR semantics, but as `*` when written alone; we treat it as `*` always. Such
    /// expressions are left out of the comparison rather than matched bug for bug.
    static func croniterQuirk(_ expression: String) -> Bool {
        let fields = expression.split(separator: " ")
        guard let cron = try? CronExpression(expression) else { return false }
        return (fields[2] != "*" && cron.dayOfMonth.isUnrestricted) || (fields[4] != "*" && cron.dayOfWeek.isUnrestricted)
    }

    @Test(
        "matches croniter on thousands of random expressions and instants, DST and DOM/DOW OR included",
        .enabled(if: schedulePython != nil, "needs .venv from scripts/setup"))
    func matchesCroniter() async throws {
        var generator = CronCaseGenerator(state: 0xD70E_2026)
        let zones = ["America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata"]
        let transitionsByZone = Dictionary(uniqueKeysWithValues: zones.map { ($0, transitions(TimeZone(identifier: $0)!)) })
        var cases: [Case] = []
        for index in 0..<2400 {
            let zone = zones[index % zones.count]
            let start: Double
            if let near = transitionsByZone[zone], !near.isEmpty, generator.int(0...2) > 0 {
                // Within a day of a transition, at an arbitrary second.
                start = generator.pick(near).timeIntervalSince1970 + Double(generator.int(-86_400...86_400)) + Double(generator.int(0...999)) / 1000
            } else {
                start = Double(generator.int(1_704_067_200...1_861_920_000))
            }
            var expression = generator.expression()
            while Self.croniterQuirk(expression) { expression = generator.expression() }
            cases.append(Case(expression: expression, timezone: zone, start: start, count: 4))
        }
        // Hand-picked: the gap and the repeated hour in both zones, and DOM/DOW OR.
        let pinned: [(String, String, Double)] = [
            ("30 2 * * *", "America/New_York", 1_772_910_000),  // 2026-03-07 14:00 EST: spring gap next
            ("*/30 * * * *", "America/New_York", 1_772_949_600),
            ("30 1 * * *", "America/New_York", 1_792_990_800),  // fall back 2026-11-01
            ("0 * * * *", "America/New_York", 1_793_000_000),
            ("30 2 * * *", "Europe/Berlin", 1_774_656_000),  // 2026-03-28: spring gap next
            ("30 2 * * *", "Europe/Berlin", 1_792_800_000),  // fall back 2026-10-25
            ("0 0 13 * fri", "UTC", 1_767_225_600),
            ("0 12 1,15 * mon", "Europe/Berlin", 1_767_225_600),
        ]
        for (expression, zone, start) in pinned {
            cases.append(Case(expression: expression, timezone: zone, start: start, count: 6))
        }

        let directory = scratchDirectory("cron")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("cases.json")
        let output = directory.appendingPathComponent("answers.json")
        try JSONEncoder().encode(cases).write(to: input)

        let (status, text) = try await runProgram(
            schedulePython!, [projectRoot.appendingPathComponent("Tests/oracle/cron_oracle.py").path, input.path, output.path],
            timeout: .seconds(120))
        #expect(status == 0, "\(text)")
        let answers = try JSONDecoder().decode([Answer].self, from: Data(contentsOf: output))
        #expect(answers.count == cases.count)

        var mismatches: [String] = []
        var compared = 0
        for (testCase, answer) in zip(cases, answers) {
            let ours: Answer
            do {
                let cron = try CronExpression(testCase.expression, timeZone: testCase.timezone)
                ours = .instants(
                    cron.upcoming(after: Date(timeIntervalSince1970: testCase.start), count: testCase.count)
                        .map { Int($0.timeIntervalSince1970) })
            } catch {
                ours = .error("\(error)")
            }
            switch (ours, answer) {
            case (.instants(let mine), .instants(let theirs)):
                compared += 1
                if mine != theirs {
                    mismatches.append("\(testCase.expression) in \(testCase.timezone) after \(testCase.start): ours \(mine), croniter \(theirs)")
                }
            case (.error, .error):
                break
            default:
                mismatches.append("\(testCase.expression) in \(testCase.timezone): ours \(ours), croniter \(answer)")
            }
        }
        #expect(compared > 2000, "too few cases compared: \(compared)")
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(8).joined(separator: "\n"))")
    }
}
