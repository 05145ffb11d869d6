import Foundation

/// The pip requirements an environment may ask for: a PEP 508 name, optional extras and
/// optional version specifiers (`pandas`, `requests[socks]>=2.31,<3`, `numpy==2.1.*`).
///
/// Anything else pip would also accept is a way to run code of the requester's choosing at
/// install time: a local path (`/var/tmp/.../workspaces/<session>/pkg`, a project the agent
/// wrote, with its own build backend), a URL, a VCS specifier (`git+https://...`), a direct
/// reference (`name @ url`) or an option (`--index-url`, `-e`). Those are refused unless the
/// operator allows them (`DROVER_PIP_ALLOW_ANY=1`), and even then the install runs sandboxed.
public enum PipRequirement {
    /// Whether the operator allows any specifier pip accepts.
    public static var allowAny: Bool {
        ProcessInfo.processInfo.environment["DROVER_PIP_ALLOW_ANY"] == "1"
    }

    /// Nil when `spec` is a plain requirement; otherwise why not.
    public static func problem(with spec: String) -> String? {
        if allowAny { return spec.hasPrefix("-") ? "options are never accepted" : nil }
        let text = spec.trimmingCharacters(in: .whitespaces)
        guard text.utf8.count <= 200 else { return "longer than 200 characters" }
        var rest = Substring(text)
        let name = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        guard let first = name.first, let last = name.last,
            first.isLetter || first.isNumber, last.isLetter || last.isNumber
        else {
            return "does not start with a package name"
        }
        rest = rest.dropFirst(name.count).drop { $0 == " " }
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { return "has an unclosed [extras] list" }
            let extras = rest[rest.index(after: rest.startIndex)..<close].split(separator: ",", omittingEmptySubsequences: false)
            for extra in extras.map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard !extra.isEmpty, extra.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
                    return "has an extra that is not a name"
                }
            }
            rest = rest[rest.index(after: close)...].drop { $0 == " " }
        }
        if rest.isEmpty { return nil }
        for clause in rest.split(separator: ",", omittingEmptySubsequences: false) {
            let clause = clause.trimmingCharacters(in: .whitespaces)
            guard let op = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"].first(where: { clause.hasPrefix($0) }) else {
                return "has `\(clause.prefix(40))` where a version specifier (==, >=, <, ~= ...) belongs"
            }
            let version = clause.dropFirst(op.count).trimmingCharacters(in: .whitespaces)
            guard !version.isEmpty, version.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".*+!-_".contains($0)) }) else {
                return "has a version that is not a version (`\(version.prefix(40))`)"
            }
        }
        return nil
    }
}
