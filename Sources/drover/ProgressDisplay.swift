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
    /// Running items and their sessions, in the order they started.
    private var running: [(item: String, session: String)] = []
    /// The job's output columns, in order: every one is shown on an item's line.
    private let columns: [String]
    private var started = ContinuousClock.now
    private var finishedThisRun = 0
    private var ticker: Task<Void, Never>?
    private var closed = false

    init(columns: [String] = [], interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        self.columns = columns
        self.interactive = interactive
    }

    func handle(_ progress: BatchRunner.Progress) {
        lock.withLock {
            guard !closed else { return }
            switch progress {
            case .planned(let total, let earlier, let toRun, let retried, let resumed):
                self.total = total
                finishedEarlier = earlier
                done = earlier
                started = .now
                var notes: [String] = []
                if resumed > 0 { notes.append("\(resumed) continue their sessions") }
                if retried > 0 { notes.append("\(retried) started over") }
                emit(
                    "\(total) items: \(earlier) finished in an earlier run, \(toRun) to run"
                        + (notes.isEmpty ? "" : " (\(notes.joined(separator: "; ")))"))
            case .itemStarted(let id, let attempt, let session, let resumed):
                running.removeAll { $0.item == id }
                running.append((id, session))
                if !interactive {
                    emit(
                        resumed
                            ? "resume \(id)  \(session)  (continues the session an earlier run left)"
                            : "start  \(id)" + (attempt > 1 ? " (attempt \(attempt))" : "") + "  \(session)")
                }
            case .itemFinished(let outcome):
                running.removeAll { $0.item == outcome.itemId }
                done += 1
                finishedThisRun += 1
                if outcome.status != .succeeded { failed += 1 }
                let seconds = outcome.durationSeconds.map { String(format: "%.1fs", $0) } ?? ""
                let detail = outcome.status == .succeeded ? columnText(outcome) : String((outcome.error ?? "").prefix(200))
                emit("\(Self.pad(outcome.status.rawValue, 9)) [\(done)/\(total)] \(outcome.itemId) \(seconds)  \(detail)")
            case .itemLeftPending(let outcome):
                running.removeAll { $0.item == outcome.itemId }
                emit("pending   \(outcome.itemId)  \(outcome.sessionId ?? "")  (interrupted; the next run continues it)")
            case .budgetSpent(let reason):
                emit("budget: \(reason); the remaining items were not started")
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

    /// Stops the display for good: the run is ending at once, and what its items report now
    /// (errors from the shutdown itself) is not news.
    func close() {
        stop()
        lock.withLock { closed = true }
    }

    /// Every output column, in the job's order (or the item's own, when the job names none).
    private func columnText(_ outcome: ItemOutcome) -> String {
        let names = columns.isEmpty ? outcome.columns.keys.sorted() : columns
        return names.map { "\($0)=\(Self.short(outcome.columns[$0], limit: 40))" }.joined(separator: " ")
    }

    /// A line the user may need while the run goes on, such as an interruption notice.
    func notice(_ line: String) {
        lock.withLock {
            guard !closed else { return }
            emit(line)
            if interactive { drawStatus() }
        }
    }

    private func emit(_ line: String) {
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
        // The running items with their sessions, so `drover sessions tail ID` can follow one.
        var names = running.prefix(3).map { "\($0.item) \($0.session)" }.joined(separator: ", ")
        if running.count > 3 { names += " +\(running.count - 3) more" }
        let line =
            "done \(done - failed)/\(total) · failed \(failed) · elapsed \(Self.clock(elapsed)) · ETA \(eta) · running \(running.count)"
            + (names.isEmpty ? "" : ": " + names)
        // Cut to the terminal's width: a wrapped status line could not be redrawn in place.
        write("\r\u{1B}[2K" + String(line.prefix(Self.terminalWidth() - 1)))
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 else { return 100 }
        return Int(size.ws_col)
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

    static func short(_ value: JSONValue?, limit: Int = 24) -> String {
        guard let value else { return "" }
        switch value {
        case .string(let text): return String(text.prefix(limit))
        case .number(let number): return Int64(exactly: number).map(String.init) ?? String(format: "%.2f", number)
        case .bool(let flag): return String(flag)
        case .null: return "null"
        default: return String(value.compactJSON.prefix(limit))
        }
    }
}
