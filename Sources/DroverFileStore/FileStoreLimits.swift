import DroverCore
import Foundation

/// How much the file store takes and for how long it keeps it. The bytes live in Redis memory,
/// so both sizes are bounded, and nothing stays past `retention` unless it is used again.
public struct FileStoreLimits: Sendable, Equatable {
    /// The largest one file may be.
    public var maxFileBytes: Int
    /// The most one session's files may take together (its starting files, or what one turn
    /// sends back).
    public var maxSessionBytes: Int
    /// How long a blob or a manifest is kept after it was last written or read.
    public var retentionSeconds: Int

    public static let defaultMaxFileBytes = 64 << 20
    public static let defaultMaxSessionBytes = 256 << 20
    public static let defaultRetentionSeconds = 30 * 86_400

    public init(
        maxFileBytes: Int = defaultMaxFileBytes, maxSessionBytes: Int = defaultMaxSessionBytes, retentionSeconds: Int = defaultRetentionSeconds
    ) {
        self.maxFileBytes = maxFileBytes
        self.maxSessionBytes = maxSessionBytes
        self.retentionSeconds = retentionSeconds
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// `DROVER_FILE_STORE_MAX_BYTES`, `DROVER_FILE_STORE_SESSION_BYTES`, `DROVER_FILE_STORE_DAYS`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FileStoreLimits {
        var limits = FileStoreLimits()
        func read(_ name: String, _ range: ClosedRange<Int>, unit: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw Invalid(
                    description:
                        "\(name)=\(text.prefix(40)) is not a whole number of \(unit) from \(range.lowerBound) to \(range.upperBound). Fix: set it in that range, or unset it for the default"
                )
            }
            return value
        }
        if let value = try read("DROVER_FILE_STORE_MAX_BYTES", 1...(256 << 20), unit: "bytes") { limits.maxFileBytes = value }
        if let value = try read("DROVER_FILE_STORE_SESSION_BYTES", 1...(4 << 30), unit: "bytes") { limits.maxSessionBytes = value }
        if let value = try read("DROVER_FILE_STORE_DAYS", 1...3650, unit: "days") { limits.retentionSeconds = value * 86_400 }
        return limits
    }
}
