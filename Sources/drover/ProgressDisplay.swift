import DroverCore
import DroverJobs
import Foundation

/// The live view of a batch: one redrawn status line on a terminal, one line per event otherwise
/// (CI logs, pipes), so nothing is lost when stdout is a file.
final class ProgressDisplay: @unchecked Sendable {
    private let lock = NSLock()
    private let interactive: Bool
    private var total = 0
    private var finishedEarlier = 0
    private var done = 0
    private var failed = 0
    private var running: Set<String> = []
    private var started = ContinuousClock.now
    private var finishedThisRun = 0
    private var ticker: Task<Void, Never>?

    init(interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        self.interactive = interactive
    }

    func handle(_ progress: BatchRunner.Progress) {
        lock.withLock {
            switch progress {
            case .planned(let total, let earlier, let toRun):
                self.total = total
                finishedEarlier = earlier
                done = earlier
                started = .now
                emit("\(total) items: \(earlier) finished in an earlier run, \(toRun) to run")
            case .itemStarted(let id, let attempt, let session):
                running.insert(id)
                if !interactive { emit("start  \(id)" + (attempt > 1 ? " (attempt \(attempt))" : "") + "  \(session)") }
            case .itemFinished(let outcome):
                running.remove(outcome.itemId)
                done += 1
                finishedThisRun += 1
                if outcome.status != .succeeded { failed += 1 }
                let columns = outcome.columns.keys.sorted().prefix(4).map { "\($0)=\(Self.short(outcome.columns[$0]))" }.joined(separator: " ")
                let seconds = outcome.durationSeconds.map { String(format: "%.1fs", $0) } ?? ""
                let detail = outcome.status == .succeeded ? columns : (outcome.error ?? "")
                emit(
                    "\(Self.pad(outcome.status.rawValue, 9)) [\(done)/\(total)] \(outcome.itemId) \(seconds)  \(detail.prefix(160))", persistent: true
                )
            case .budgetSpent(let reason):
                emit("budget: \(reason); the remaining items were not started", persistent: true)
            }
            if interactive { drawStatus() }
        }
    }

    /// Redraws the status line every second, so the ETA moves while items run.
    func startTicking() {
        guard interactive else { return }
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                self?.lock.withLock { self?.drawStatus() }
            }
        }
    }

    func stop() {
        ticker?.cancel()
        if interactive { lock.withLock { write("\r\u{1B}[2K") } }
    }

    private func emit(_ line: String, persistent: Bool = true) {
        if interactive { write("\r\u{1B}[2K") }
        write(line + "\n")
    }

    private func drawStatus() {
        let elapsed = (ContinuousClock.now - started).seconds
        var eta = "--"
        if finishedThisRun > 0 {
            let remaining = Double(total - done) * elapsed / Double(finishedThisRun)
            eta = remaining < 1 ? "<1s" : Self.clock(remaining)
        }
        write(
            "\r\u{1B}[2K"
                + "done \(done - failed)/\(total) · failed \(failed) · running \(running.count) · elapsed \(Self.clock(elapsed)) · ETA \(eta)")
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return whole >= 3600
            ? String(format: "%dh%02dm", whole / 3600, (whole % 3600) / 60)
            : whole >= 60 ? String(format: "%dm%02ds", whole / 60, whole % 60) : "\(whole)s"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func short(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        switch value {
        case .string(let text): return String(text.prefix(24))
        case .number(let number): return Int64(exactly: number).map(String.init) ?? String(format: "%.2f", number)
        case .bool(let flag): return String(flag)
        case .null: return "null"
        default: return String(value.compactJSON.prefix(24))
        }
    }
}
