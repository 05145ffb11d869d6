import DroverCore
import Foundation

/// Turns what an agent produced into report columns: a JSON object in its final message, or a
/// JSON file it wrote in its workspace.
public enum OutputExtractor {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The first JSON object in `text`: a fenced ```json block, or the outermost braces.
    public static func jsonObject(in text: String) -> [String: JSONValue]? {
        var candidates: [Substring] = []
        if let fence = text.range(of: "```json"), let end = text.range(of: "```", range: fence.upperBound..<text.endIndex) {
            candidates.append(text[fence.upperBound..<end.lowerBound])
        }
        if let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close {
            candidates.append(text[open...close])
        }
        for candidate in candidates {
            if case .object(let object)? = try? JSONValue.parse(String(candidate)) { return object }
        }
        return nil
    }

    /// The wanted keys of `object` (every key when none is named). A key the object lacks fails
    /// the item, naming the keys it has: a misspelt column must not pass as an empty one.
    public static func columns(from object: [String: JSONValue], wanted: [String]) -> Result<[String: JSONValue], Failure> {
        guard !wanted.isEmpty else { return .success(object) }
        let missing = wanted.filter { object[$0] == nil }
        guard missing.isEmpty else {
            let has = object.keys.sorted().map { "`\($0)`" }.joined(separator: ", ")
            return .failure(
                Failure(
                    description:
                        "the output has no \(missing.map { "`\($0)`" }.joined(separator: ", ")) (it has \(has.isEmpty ? "no keys" : has)). Fix: name those keys in output.columns, or ask for them in the prompt"
                ))
        }
        return .success(object.filter { wanted.contains($0.key) })
    }

    /// `workspace` may be nil for output from the final message, which does not read it.
    public static func extract(_ output: JobSpec.Output, finalMessage: String?, workspace: URL?) -> Result<[String: JSONValue], Failure> {
        switch output.source {
        case .finalMessage:
            guard let finalMessage, !finalMessage.isEmpty else {
                return .failure(Failure(description: "the agent sent no final message"))
            }
            guard let object = jsonObject(in: finalMessage) else {
                let preview = finalMessage.prefix(160).replacingOccurrences(of: "\n", with: " ")
                return .failure(Failure(description: "the final message holds no JSON object (it begins: \(preview))"))
            }
            return columns(from: object, wanted: output.columns)
        case .file:
            guard let workspace else { return .failure(Failure(description: "output.file needs the session's workspace, and there is none")) }
            let path = output.file ?? ""
            let url = workspace.appendingPathComponent(path).standardizedFileURL
            guard url.path.hasPrefix(workspace.standardizedFileURL.path + "/") else {
                return .failure(Failure(description: "output.file `\(path)` is outside the workspace"))
            }
            // The workspace is the sandbox's: a link there to a host file must not become columns.
            let data: Data
            do {
                guard let read = try SandboxWrittenFiles(root: workspace, maxBytes: 16 << 20).read(path) else {
                    return .failure(Failure(description: "the agent did not write \(path)"))
                }
                data = read
            } catch {
                return .failure(Failure(description: "output.file \(error)"))
            }
            guard case .object(let object)? = try? JSONValue.parse(String(decoding: data, as: UTF8.self)) else {
                return .failure(Failure(description: "\(path) is not a JSON object"))
            }
            return columns(from: object, wanted: output.columns)
        }
    }
}
