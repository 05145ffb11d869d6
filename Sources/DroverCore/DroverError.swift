/// An error a person can act on: what went wrong, which input caused it, and how to fix it.
public protocol ActionableError: Error, CustomStringConvertible, Sendable {
    /// The configuration field, argument or input that was wrong, when there is one.
    var field: String? { get }
    /// One sentence that says how to fix it.
    var fix: String? { get }
}

/// A configuration value that cannot be used.
public struct ConfigurationError: ActionableError, Equatable {
    public let field: String?
    public let message: String
    public let fix: String?

    public init(field: String, message: String, fix: String) {
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var text = "\(field ?? "configuration"): \(message)"
        if let fix { text += ". Fix: \(fix)" }
        return text
    }
}
