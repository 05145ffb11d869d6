import Foundation

/// `{{name}}` templates: no logic, only names.
public enum Template {
    /// The placeholder names in order of appearance, trimmed of spaces.
    public static func names(in template: String) -> [String] {
        var names: [String] = []
        _ = render(template) { name in
            names.append(name)
            return nil
        }
        return names
    }

    /// Fills each placeholder with `value(name)`, or leaves it as written when that is nil.
    public static func render(_ template: String, _ value: (String) -> String?) -> String {
        var output = ""
        var rest = template[...]
        while let open = rest.range(of: "{{"), let close = rest.range(of: "}}", range: open.upperBound..<rest.endIndex) {
            output += rest[..<open.lowerBound]
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            output += value(name) ?? String(rest[open.lowerBound..<close.upperBound])
            rest = rest[close.upperBound...]
        }
        return output + rest
    }
}

extension Template {
    /// The line (from 1) of the first `{{name}}` at or after line `from` of `text`: where an
    /// error about the placeholder points.
    public static func line(of name: String, in text: String, from: Int = 1) -> Int? {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 >= from {
            if names(in: String(line)).contains(name) { return index + 1 }
        }
        return nil
    }

    /// The line (from 1) of the top-level key `key:` of a YAML text.
    public static func line(ofKey key: String, in text: String) -> Int? {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.hasPrefix(key + ":") {
            return index + 1
        }
        return nil
    }
}
