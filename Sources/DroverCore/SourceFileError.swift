/// A file a person wrote (a job, a schedule) that cannot be used: the file, the line, the
/// field, and the fix, as `Jobs/x.yaml:5: retries: must be a whole number. Fix: ...`.
public struct SourceFileError: ActionableError, Equatable {
    public let file: String
    public let line: Int?
    public let field: String?
    public let message: String
    public let fix: String?

    public init(file: String, line: Int?, field: String?, message: String, fix: String?) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let field, !field.isEmpty { text += "\(field): " }
        text += message
        if let fix { text += ". Fix: \(fix)" }
        return text
    }
}
