import Foundation
import Testing

@testable import DroverCore

@Suite("JSON value parser")
struct JSONValueParserTests {
    private static func decoded(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test("every SDK event fixture parses to what JSONDecoder makes of it")
    func fixturesMatchTheDecoder() throws {
        var count = 0
        for name in ["session_events.jsonl", "client_events.jsonl"] {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
            for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where !line.isEmpty {
                let text = String(line)
                let fast = try #require(JSONValueParser.parse(text), "\(text)")
                #expect(fast == Self.decoded(text), "\(text)")
                count += 1
            }
        }
        #expect(count > 20)
    }

    @Test("random documents, escapes and all, parse as JSONDecoder parses them")
    func randomDocumentsMatchTheDecoder() throws {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["a", "é", "🐑", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "\u{2028}", "日本", " ", "{", "]"]
        func randomString() -> String {
            (0..<Int.random(in: 0...8, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
        }
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 4 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2:
                let choices: [Double] = [
                    0, -0.5, 1, 1e21, 123_456_789_012, 3.141_592_653_589_793, -1e-7, Double(Int.random(in: -1000...1000, using: &generator)),
                ]
                return .number(choices.randomElement(using: &generator)!)
            case 3: return .string(randomString())
            case 4: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &generator) { members[randomString()] = randomValue(depth + 1) }
                return .object(members)
            }
        }
        for _ in 0..<500 {
            let value = randomValue(0)
            for text in [String(decoding: try JSONEncoder().encode(value), as: UTF8.self), value.compactJSON] {
                #expect(JSONValueParser.parse(text) == Self.decoded(text), "\(text)")
                #expect(JSONValueParser.parse(text) == value, "\(text)")
            }
        }
    }

    @Test("compactJSON writes what JSONEncoder writes with sorted keys, byte for byte")
    func writerMatchesTheEncoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func encoded(_ value: JSONValue) -> String { (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null" }
        var generator = SystemRandomNumberGenerator()
        let pieces = [
            "a", "B", "_", "é", "ß", "🐑", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{C}", "\u{0}", "\u{1F}", "\u{7F}", "\u{2028}", "日本", "10",
            "9",
        ]
        func randomString() -> String {
            (0..<Int.random(in: 0...6, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
        }
        let numbers: [Double] = [
            0, -0.0, 0.1, -1e-7, 1e21, 1e300, 5e-324, 0.30000000000000004, 100, -42, 9_007_199_254_740_993, 123_456_789.125, 1e16,
        ]
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .number(numbers.randomElement(using: &generator)!)
            case 3: return .string(randomString())
            case 4: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...5, using: &generator) { members[randomString()] = randomValue(depth + 1) }
                return .object(members)
            }
        }
        for _ in 0..<1000 {
            let value = randomValue(0)
            #expect(value.compactJSON == encoded(value))
        }
        for number in numbers { #expect(JSONValue.number(number).compactJSON == encoded(.number(number))) }
        #expect(JSONValue.array([.number(.infinity)]).compactJSON == "null")
        #expect(JSONValue.number(.nan).compactJSON == encoded(.number(.nan)))
    }

    @Test("numbers, literals, escapes and whitespace in the forms RFC 8259 allows")
    func acceptsTheGrammar() {
        let cases: [(String, JSONValue)] = [
            ("-0", .number(-0.0)), ("1e5", .number(100_000)), ("1E+2", .number(100)), ("2.5e-1", .number(0.25)),
            ("12345678901234567890", .number(12_345_678_901_234_567_890)),
            (" \n\t[ 1 , true,false , null ]\r\n", .array([.number(1), .bool(true), .bool(false), .null])),
            (#""\u00e9\ud83d\ude00\/\b\f\n\r\t""#, .string("é😀/\u{8}\u{C}\n\r\t")), (#"{"a":1,"a":2}"#, .object(["a": .number(2)])),
            (#"{ "k" : { } , "l" : [ ] }"#, .object(["k": .object([:]), "l": .array([])])), (#""\u0000""#, .string("\u{0}")),
        ]
        for (text, expected) in cases {
            #expect(JSONValueParser.parse(text) == expected, "\(text)")
        }
    }

    @Test("malformed and hostile input is refused, never a crash: a million brackets deep included")
    func refusesTheRest() throws {
        for text in [
            "", " ", "01", "1.", ".5", "+1", "-", "1e", "1e+", "[1,]", "[,1]", #"{"a":1,}"#, #"{"a" 1}"#, #"{a:1}"#, "tru", "nul", "[1] x",
            "\"a\nb\"", "1e400", "-1e400", #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, #""\x""#, #""\u12""#, "\"open", "[", "{", "NaN",
            "Infinity",
        ] {
            #expect(JSONValueParser.parse(text) == nil, "\(text)")
        }
        let deep = String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000)
        #expect(JSONValueParser.parse(deep) == nil)
        let allowed = String(repeating: "[", count: JSONValueParser.maximumDepth) + String(repeating: "]", count: JSONValueParser.maximumDepth)
        #expect(JSONValueParser.parse(allowed) != nil)
        // Through the public door, the refusal names the fault.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"a":}"#) }
    }
}
