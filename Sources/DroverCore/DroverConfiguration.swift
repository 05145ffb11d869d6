import Foundation

/// Process-wide settings, read from the environment. Every field has an embedded default,
/// so `drover` runs on a fresh machine with nothing set.
public struct DroverConfiguration: Sendable {
    /// `DROVER_REDIS_URL`. When nil, Drover starts a private `redis-server` in `dataDirectory`.
    public var redisURL: String?
    /// `DROVER_DATA_DIR`, else the nearest `.drover` here or above, else `./.drover`.
    public var dataDirectory: URL
    /// How `dataDirectory` was chosen.
    public var dataDirectoryOrigin = DataDirectoryOrigin.environment
    /// `DROVER_DB`, default `<dataDirectory>/drover.db`.
    public var databasePath: URL
    /// `DROVER_REDIS_POOL`, default 2: connections per process that ordinary commands share, each
    /// pipelining its concurrent callers (blocking reads use connections of their own).
    public var redisPoolSize: Int

    public init(
        redisURL: String? = nil,
        dataDirectory: URL = URL(fileURLWithPath: ".drover"),
        databasePath: URL? = nil,
        redisPoolSize: Int = 2
    ) {
        self.redisURL = redisURL
        self.dataDirectory = dataDirectory.standardizedFileURL
        self.databasePath = (databasePath ?? dataDirectory.appendingPathComponent("drover.db")).standardizedFileURL
        self.redisPoolSize = redisPoolSize
    }

    /// Where `drover api` and `drover serve` listen: `DROVER_API_ADDR`, else 127.0.0.1:8787.
    public static func apiAddress(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["DROVER_API_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:8787"
    }

    /// Parses `host:port` as in `DROVER_API_ADDR`; an empty host is every address, `[v6]` loses
    /// its brackets.
    public static func hostAndPort(_ text: String) throws(FieldError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw FieldError(field: "DROVER_API_ADDR", message: "'\(text)' is not host:port", fix: "use for example 127.0.0.1:8787")
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(FieldError) -> DroverConfiguration {
        func nonEmpty(_ key: String) -> String? {
            guard let value = environment[key]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }
        let (dataDirectory, origin) =
            nonEmpty("DROVER_DATA_DIR").map { (URL(fileURLWithPath: $0), DataDirectoryOrigin.environment) } ?? locateDataDirectory()
        var poolSize = 2
        if let raw = nonEmpty("DROVER_REDIS_POOL") {
            guard let value = Int(raw), (1...256).contains(value) else {
                throw FieldError(
                    field: "DROVER_REDIS_POOL",
                    message: "'\(raw)' is not a connection count",
                    fix: "set it to a whole number from 1 to 256, or unset it for the default of 2"
                )
            }
            poolSize = value
        }
        var configuration = DroverConfiguration(
            redisURL: nonEmpty("DROVER_REDIS_URL"),
            dataDirectory: dataDirectory,
            databasePath: nonEmpty("DROVER_DB").map { URL(fileURLWithPath: $0) },
            redisPoolSize: poolSize
        )
        configuration.dataDirectoryOrigin = origin
        return configuration
    }

    public enum DataDirectoryOrigin: Sendable, Equatable {
        /// `DROVER_DATA_DIR`.
        case environment
        /// A `.drover` directory in the working directory or one above it.
        case found
        /// None was found: `./.drover`, made on first use.
        case new
    }

    /// Finds the data directory as git finds `.git`: the nearest `.drover` directory in
    /// `workingDirectory` or above it, so that a command run from a subfolder (`Jobs/`) uses the
    /// project's store instead of starting an empty one. Without one, `./.drover`.
    public static func locateDataDirectory(
        from workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    ) -> (URL, DataDirectoryOrigin) {
        var directory = workingDirectory.standardizedFileURL
        while true {
            let candidate = directory.appendingPathComponent(".drover")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), isDirectory.boolValue {
                return (candidate, .found)
            }
            let parent = directory.deletingLastPathComponent().standardizedFileURL
            if parent.path == directory.path { break }
            directory = parent
        }
        return (workingDirectory.appendingPathComponent(".drover").standardizedFileURL, .new)
    }
}
