/// Why a JSON value is not the wire shape expected, and where: `path` is the field,
/// for example `events[0].content`.
public struct WireDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    init(path: String, expected: String, got value: JSONValue?) {
        self.init(path: path, message: value.map { "expected \(expected), got \($0.kindName)" } ?? "missing; expected \(expected)")
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

public enum WirePath {
    public static func field(_ base: String, _ key: String) -> String { base.isEmpty ? key : "\(base).\(key)" }
    static func index(_ base: String, _ index: Int) -> String { "\(base)[\(index)]" }

    /// `[_JSONKey("events"), _JSONKey(index 0)]` as `events[0]`.
    public static func from(_ codingPath: [any CodingKey]) -> String {
        codingPath.reduce("") { path, key in
            key.intValue.map { index(path, $0) } ?? field(path, key.stringValue)
        }
    }
}
