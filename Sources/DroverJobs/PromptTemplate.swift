import DroverCore
import Foundation

/// `{{field}}` placeholders over an item's fields. Nothing else: no logic in templates.
public enum PromptTemplate {
    public struct UnknownField: Error, CustomStringConvertible, Sendable {
        public let field: String
        public let available: [String]
        public var description: String {
            "{{\(field)}} names no field of the item; its fields are \(available.joined(separator: ", "))"
        }
    }

    /// The placeholder names, in order of appearance.
    static func placeholders(_ template: String) -> [String] { Template.names(in: template) }

    /// Checks the placeholders of a template that sits at `codingPath` in a job file.
    static func validate(_ template: String, at codingPath: [any CodingKey]) throws(SourceFileProblem) {
        let opens = template.components(separatedBy: "{{").count - 1
        let closes = template.components(separatedBy: "}}").count - 1
        guard opens == closes else {
            throw SourceFileProblem(at: codingPath, "has \(opens) `{{` but \(closes) `}}`", fix: "close every placeholder, as in {{name}}")
        }
        for name in placeholders(template) where name.isEmpty || name.contains(where: { $0.isWhitespace }) {
            throw SourceFileProblem(at: codingPath, "has the placeholder {{\(name)}}", fix: "write a field name without spaces, as in {{name}}")
        }
    }

    public static func render(_ template: String, fields: [String: String]) throws(UnknownField) -> String {
        if let missing = Template.names(in: template).first(where: { fields[$0] == nil }) {
            throw UnknownField(field: missing, available: fields.keys.sorted())
        }
        return Template.render(template) { fields[$0] }
    }
}
