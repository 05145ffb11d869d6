/// An incremental parser for `text/event-stream` (the WHATWG server-sent events format): feed it
/// bytes as they arrive, get whole events back.
public struct SSEParser: Sendable {
    public struct Event: Sendable, Equatable {
        public var name: String
        public var data: String
        public var id: String?
    }

    private var buffer: [UInt8] = []
    private var name = ""
    private var data: [String] = []
    private var id: String?

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        buffer.append(contentsOf: bytes)
        var events: [Event] = []
        var start = 0
        var index = 0
        while index < buffer.count {
            let byte = buffer[index]
            if byte == 10 || byte == 13 {
                var line = Array(buffer[start..<index])
                if line.last == 13 { line.removeLast() }
                // CRLF counts as one line ending.
                if byte == 13, index + 1 < buffer.count, buffer[index + 1] == 10 { index += 1 }
                if byte == 13, index + 1 == buffer.count {
                    // A lone CR at the end of the buffer might be the first half of CRLF.
                    break
                }
                if let event = process(line) { events.append(event) }
                start = index + 1
            }
            index += 1
        }
        buffer.removeFirst(min(start, buffer.count))
        return events
    }

    /// Dispatches an event left unterminated when the stream ended.
    public mutating func finish() -> Event? {
        if !buffer.isEmpty {
            let line = buffer
            buffer = []
            _ = process(line)
        }
        return process([])
    }

    private mutating func process(_ line: [UInt8]) -> Event? {
        if line.isEmpty {
            defer {
                name = ""
                data = []
            }
            guard !data.isEmpty else { return nil }
            return Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"), id: id)
        }
        if line.first == 58 { return nil }  // ':' starts a comment
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = Substring(text)
            value = ""
        }
        switch field {
        case "event": name = String(value)
        case "data": data.append(String(value))
        case "id": id = String(value)
        default: break
        }
        return nil
    }
}
