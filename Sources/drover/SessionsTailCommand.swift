import ArgumentParser
import DroverConsole
import DroverCore
import DroverRuntime
import DroverSessionLog
import Foundation

extension SessionsCommand {
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a session live, rendered as `sessions replay` renders it (Ctrl-C stops).")
        @Argument(help: "The session id.") var session: String
        @Option(help: "Characters per line for message and tool text.") var width = 100
        @Option(help: "Lines of a long message or tool output to show (the rest is counted).") var maxLines = 20
        @Flag(help: "Show messages and tool input and output whole, however long.") var full = false
        @Flag(help: "Start at the end of the log instead of replaying it first.") var fromEnd = false
        @Flag(help: "Stop when the session goes idle (not waiting on a tool result) or terminates.") var untilIdle = false

        func run() async throws {
            try await withRuntime { runtime in
                let log = try runtime.sessionLog
                let id = try SessionID(session)
                let start = fromEnd ? (try await log.meta(id)?.lastSeq ?? 0) : 0
                var builder = SessionTimeline.Builder()
                let text = TimelineText(width: width, maxLines: maxLines, full: full)
                for try await event in log.tail(id, afterSeq: start) {
                    FileHandle.standardOutput.write(Data((text.lines(builder.add(event)).joined(separator: "\n") + "\n").utf8))
                    if untilIdle, Self.endsTurn(event) { break }
                }
            }
        }

        static func endsTurn(_ event: StoredEvent) -> Bool {
            switch event.payload {
            case .sessionStatusTerminated?: true
            case .sessionStatusIdle(let idle)?: if case .requiresAction = idle.stopReason { false } else { true }
            default: false
            }
        }
    }

    struct Terminate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a session for good: it accepts no more events. A turn running now loses its fence and stops.")
        @Argument(help: "The session id.") var session: String

        func run() async throws {
            try await withRuntime { runtime in
                let log = try runtime.sessionLog
                let id = try SessionID(session)
                let fence = try await log.takeFence(id)
                let result = try await log.append(id, [.sessionStatusTerminated], fence: fence)
                // Its threads end with it.
                try await log.endThreads(of: id)
                print("terminated \(id) at seq \(result.lastSeq)")
            }
        }
    }
}
