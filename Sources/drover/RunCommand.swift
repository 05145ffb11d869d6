import ArgumentParser
import Foundation

/// `drover run` belongs to the Jobs issue. Until it lands it says so, rather than pretending.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a batch job from Jobs/ (not built yet).",
        discussion: """
        Batch jobs (one agent session per item, with a report) are not built yet: they need the
        session log, the brain and the hands first. Today Drover provides the task queue;
        see `drover queue --help` and `drover bench queue --help`.
        """
    )

    @Argument(help: "A job file, such as Jobs/grade-assignments.yaml.")
    var job: String?

    func run() async throws {
        note("drover run: batch jobs are not built yet (they need the session log, brain and hands).")
        note("What works today: `drover queue stats`, `drover queue enqueue`, `drover bench queue`. See README.md, Status.")
        throw ExitCode(3)
    }
}
