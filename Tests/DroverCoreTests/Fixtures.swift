import DroverCore
import Foundation

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Each line of a JSON Lines fixture, with its 1-based line number.
    static func lines(_ name: String) throws -> [(number: Int, text: String)] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .filter { !$0.element.isEmpty }
            .map { ($0.offset + 1, String($0.element)) }
    }

    static func json(_ text: String) throws -> JSONValue {
        try JSONValue.parse(text)
    }
}
