import Foundation
import Logging

/// One JSON object per line on standard error, for log shippers (Loki, Elasticsearch, journald):
/// `time` (RFC 3339, milliseconds, UTC), `level`, `logger`, `message`, then the metadata's keys
/// at the top level, where a query can reach them. A metadata key that would hide one of those
/// four is kept as `metadata.KEY`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private static let reserved: Set<String> = ["time", "level", "logger", "message"]
    /// One writer for the process: lines from many threads never interleave.
    private static let output = Locked(())

    public init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "time": .string(Self.timestamp(Date())), "level": .string(event.level.rawValue), "logger": .string(label),
            "message": .string(event.message.description),
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged {
            fields[Self.reserved.contains(key) ? "metadata.\(key)" : key] = Self.json(value)
        }
        let line = JSONValue.object(fields).compactJSON + "\n"
        Self.output.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        // A number logged as a number stays one, so that a query can compare it.
        case .stringConvertible(let number as any BinaryInteger): .number(Double(number))
        case .stringConvertible(let number as Double) where number.isFinite: .number(number)
        case .stringConvertible(let flag as Bool): .bool(flag)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.mapValues(json))
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// How a long-running command logs: `--log-format` and `--log-level`, else `DROVER_LOG_FORMAT`
/// and `DROVER_LOG_LEVEL`, else text at `info`.
public struct LogSettings: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable { case text, json }
    public var format: Format
    public var level: Logger.Level

    public init(format: Format = .text, level: Logger.Level = .info) {
        self.format = format
        self.level = level
    }

    /// `format`/`level` from the flags when given, else from the environment.
    public static func resolve(
        format: String?, level: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(FieldError) -> LogSettings {
        var settings = LogSettings()
        /// The flag's value, else the variable's unless empty, with the name to blame.
        func given(_ flag: String?, _ flagName: String, _ variable: String) -> (raw: String, field: String)? {
            if let flag { return (flag, flagName) }
            guard let raw = environment[variable], !raw.isEmpty else { return nil }
            return (raw, variable)
        }
        if let (raw, field) = given(format, "--log-format", "DROVER_LOG_FORMAT") {
            guard let parsed = Format(rawValue: raw.lowercased()) else {
                throw FieldError(field: field, message: "'\(raw)' is not a log format", fix: "use text or json")
            }
            settings.format = parsed
        }
        if let (raw, field) = given(level, "--log-level", "DROVER_LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: raw.lowercased()) else {
                throw FieldError(
                    field: field, message: "'\(raw)' is not a log level",
                    fix: "use one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
            }
            settings.level = parsed
        }
        return settings
    }

    /// Makes every logger of the process write this way, to standard error. Once per process.
    public func bootstrap() {
        let (format, level) = (format, level)
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
