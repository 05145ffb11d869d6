/// The text `INFO` answers, read into values: `name:value` lines, `#` section headings.
public enum RedisInfo {
    /// Every `name:value` field.
    public static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }

    /// `INFO commandstats` as calls per command, by the name Redis gives it (`hset`,
    /// `config|resetstat`). Commands a script runs are counted, and so is the `EVALSHA` itself.
    public static func commandCalls(_ text: String) -> [String: Int] {
        var calls: [String: Int] = [:]
        for (name, value) in fields(text) where name.hasPrefix("cmdstat_") {
            // calls=N,usec=...
            guard let first = value.split(separator: ",").first, first.hasPrefix("calls="), let count = Int(first.dropFirst(6)) else { continue }
            calls[String(name.dropFirst("cmdstat_".count))] = count
        }
        return calls
    }
}
