import DroverCore

/// A job file that cannot be used: the file, the line, the field, and the fix.
public typealias JobFileError = SourceFileError
