/// An error a person can act on: what went wrong, which input caused it, and how to fix it.
public protocol ActionableError: Error, CustomStringConvertible, Sendable {
    /// The configuration field, argument or input that was wrong, when there is one.
    var field: String? { get }
    /// One sentence that says how to fix it.
    var fix: String? { get }
}

/// A value that cannot be used (a setting, an argument, a cron field, a deployment name): the
/// field, what is wrong with it, and the fix. The one shape every module throws for this, so a
/// caller that re-frames it (the API as a 400, a file as its line) reads the same three parts.
public struct FieldError: ActionableError, Equatable {
    public let field: String?
    public let message: String
    public let fix: String?
    /// A machine-readable kind where the SDK has one (`invalid_metadata`, `tool_name_conflict`):
    /// the API passes it on as the error's `error_code`.
    public let code: String?

    public init(field: String?, message: String, fix: String?, code: String? = nil) {
        self.field = field
        self.message = message
        self.fix = fix
        self.code = code
    }

    public var description: String {
        var text = field.map { "\($0): " } ?? ""
        text += message
        if let fix { text += ". Fix: \(fix)" }
        return text
    }
}
