import DroverCore
import Foundation

/// A schedule that starts a batch job (`job:` in a schedule file) instead of one session: each
/// occurrence runs the job's items, as `drover run` does, in a batch of its own.
public struct ScheduledJob: Sendable, Codable, Equatable {
    /// What an occurrence does while the batch of the previous one is still running.
    public enum Overlap: String, Sendable, Codable, CaseIterable {
        /// Records the occurrence as a run with the error `overlap_skipped`, and starts nothing.
        case skip
        /// Waits: the occurrence starts once the previous batch has finished.
        case queue
        /// Starts the occurrence's batch beside the running one.
        case allow
    }

    /// The job file, absolute.
    public var file: String
    /// The job's `name:`, which the occurrence's batch id starts with.
    public var name: String
    public var overlap: Overlap

    public init(file: String, name: String, overlap: Overlap) {
        self.file = file
        self.name = name
        self.overlap = overlap
    }

    /// The batch an occurrence starts: named by the job, the occurrence's UTC minute and the
    /// deployment (two schedules of one job may fire in the same minute), so a fire redone after
    /// a crash finds the same batch; a manual run's gets a random suffix of its own.
    public func batchId(occurrence: Date?, now: Date, deployment: String) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: occurrence ?? now)
        var stamp = String(format: "%04d%02d%02dt%02d%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0, parts.minute ?? 0)
        if occurrence == nil {
            stamp += String(format: "%02d_", parts.second ?? 0) + Identifier.make(prefix: "m").suffix(6).lowercased()
        } else {
            stamp += "_" + String(String(FNV1a.hash(deployment), radix: 16).suffix(4))
        }
        return "batch_" + name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() + "_" + stamp
    }
}
