import Foundation

/// A problem with a job file, pointing at the file, the line and the field, with the fix.
public struct JobFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let line: Int?
    public let field: String
    public let message: String
    public let fix: String

    public init(file: String, line: Int?, field: String, message: String, fix: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        let subject = field.isEmpty ? "" : "\(field): "
        return "\(place): \(subject)\(message). Fix: \(fix)"
    }
}
