import DroverCore
import Testing

/// A small file format, decoded the way job and schedule files are.
struct Sample: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case name, count, enabled, tags, extra }
    var name: String
    var count: Int?
    var enabled: Bool?
    var tags: [String]?
    var extra: JSONValue?

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        name = try fields.require(String.self, .name, fix: "add `name:`")
        count = try fields.decodeIfPresent(Int.self, .count, in: 1...10)
        enabled = try fields.decodeIfPresent(Bool.self, forKey: .enabled)
        tags = try fields.decodeIfPresent([String].self, forKey: .tags)
        extra = try fields.decodeIfPresent(JSONValue.self, forKey: .extra)
    }
}

@Suite("Source file decoder")
struct SourceFileDecoderTests {
    func decode(_ text: String) throws(SourceFileError) -> Sample {
        try SourceFileDecoder.decode(Sample.self, from: text, file: "x.yaml", emptyFix: "see the README")
    }

    func failure(_ text: String) -> SourceFileError? {
        do {
            _ = try decode(text)
            return nil
        } catch {
            return error
        }
    }

    @Test("a quoted scalar is text; an unquoted one is a number, a boolean or null")
    func quoting() throws {
        let sample = try decode("name: \"42\"\nenabled: true\nextra: {a: \"true\", b: true, c: \"7\", d: 7, e: ~, f: \"null\", g: [\"1\", 1]}")
        #expect(sample.name == "42")
        #expect(sample.enabled == true)
        #expect(sample.extra == .object(["a": "true", "b": .bool(true), "c": "7", "d": 7, "e": .null, "f": "null", "g": .array(["1", 1])]))
        #expect(failure("name: a\nenabled: \"true\"")?.description.contains("enabled: must be true or false") == true)
        #expect(failure("name: a\ncount: \"3\"")?.description.contains("count: must be a whole number") == true)
    }

    @Test("an unknown key is refused at its own line, with the key it was probably meant to be")
    func unknownKey() throws {
        let error = try #require(failure("name: a\n\ncuont:\n  5"))
        #expect(error.field == "cuont" && error.line == 3, "\(error)")
        #expect(error.message == "is not a known field")
        #expect(error.fix?.contains("did you mean `count`?") == true, "\(error)")
        #expect(error.fix?.contains("count, enabled, extra, name, tags") == true, "\(error)")
    }

    @Test("each error names the file, the line and the field path")
    func paths() throws {
        let missing = try #require(failure("count: 3"))
        #expect(missing.description.hasPrefix("x.yaml:1: name: is missing. Fix: add `name:`"), "\(missing)")
        let range = try #require(failure("name: a\ncount: 11"))
        #expect(range.field == "count" && range.line == 2 && range.message == "11 is out of range", "\(range)")
        let item = try #require(failure("name: a\ntags:\n  - x\n  - [y]"))
        #expect(item.field == "tags[1]" && item.line == 4 && item.message == "must be a string", "\(item)")
        let notList = try #require(failure("name: a\ntags: x"))
        #expect(notList.field == "tags" && notList.message == "must be a list", "\(notList)")
        let root = try #require(failure("- a\n- b"))
        #expect(root.field == nil && root.message.contains("must be a mapping"), "\(root)")
    }

    @Test("broken YAML, an empty file, aliases and hostile values are errors, never a crash")
    func hostile() throws {
        let broken = try #require(failure("name: [a"))
        #expect(broken.description.contains("is not valid YAML") && broken.line != nil, "\(broken)")
        #expect(failure("")?.description == "x.yaml:1: the file is empty. Fix: see the README")
        #expect(try decode("name: &n a\nextra: *n").extra == "a")
        // "Billion laughs": nine levels of nine aliases stand for 9^9 strings in a few lines.
        var laughs = "name: a\nextra:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for level in 1...9 {
            laughs += "  l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 9).joined(separator: ", ") + "]\n"
        }
        let bomb = try #require(failure(laughs))
        #expect(bomb.message.contains("more than 1000000 values"), "\(bomb)")
        let huge = try #require(failure("name: a\ncount: 99999999999999999999999999"))
        #expect(huge.field == "count", "\(huge)")
        let deep = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        let nested = try #require(failure("name: a\nextra: \(deep)"))
        #expect(nested.description.contains("not valid YAML"), "\(nested.description.prefix(300))")
        #expect(failure("name: \"\u{0}\"") != nil || (try? decode("name: \"\u{0}\"")) != nil)
    }
}
