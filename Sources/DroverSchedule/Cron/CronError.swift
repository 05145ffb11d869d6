import DroverCore

/// A cron expression or timezone that cannot be used, naming the field and the fix.
public struct CronError: ActionableError, Equatable {
    public let field: String?
    public let message: String
    public let fix: String?

    public init(field: String, message: String, fix: String) {
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var text = "\(field.map { "\($0) field: " } ?? "")\(message)"
        if let fix { text += ". Fix: \(fix)" }
        return text
    }
}
