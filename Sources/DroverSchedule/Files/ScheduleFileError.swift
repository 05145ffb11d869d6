import DroverCore

/// A schedule file that cannot be used: the file, the line, the field, and the fix.
public typealias ScheduleFileError = SourceFileError
