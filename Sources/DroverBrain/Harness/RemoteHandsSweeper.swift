import DroverCore
import DroverSelfHosted
import DroverSessionLog
import DroverTools
import Logging

/// Answers the calls of a self-hosted worker that went quiet. When a work item's lease lapses,
/// every call its session had open with that worker gets one error result (I2), the session
/// gets a turn to go on from there, and only then is the item offered to another worker, so
/// nothing the dead worker was running is run again.
///
/// Every step can be repeated: a result already written is refused by the log (`alreadyAnswered`),
/// and an item stays `lapsed` until its results are in, so a sweeper that dies midway leaves
/// the work to the next round, in this process or another.
public struct RemoteHandsSweeper: Sendable {
    public let inbox: SessionInbox
    public let work: WorkQueue
    public static let lostLease =
        "the self-hosted worker running this tool stopped renewing its lease (it died, or lost its connection); the tool may have partly run"
    private static let logger = Logger(label: "drover.remote-hands")

    public init(inbox: SessionInbox, work: WorkQueue) {
        self.inbox = inbox
        self.work = work
    }

    /// One pass over every environment's lapsed leases. Returns the calls answered.
    @discardableResult
    public func sweep() async throws -> Int {
        var answered = 0
        for environment in try await work.environments() {
            for (id, session) in try await work.lapsed(environment: environment) {
                if let session = try? SessionID(session) {
                    answered += try await answerOpenCalls(of: session)
                }
                try await work.settle(environment: environment, id: id)
                Self.logger.info("work lease lapsed", metadata: ["work": "\(id)", "session": "\(session)", "answered": "\(answered)"])
            }
        }
        return answered
    }

    /// Runs `sweep` every `interval` until cancelled; a failed pass is logged and tried again.
    public func run(every interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            do {
                try await sweep()
            } catch is CancellationError {
                return
            } catch {
                Self.logger.warning("remote hands sweep failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func answerOpenCalls(of session: SessionID) async throws -> Int {
        let events: [StoredEvent]
        do {
            events = try await inbox.log.wake(session).events
        } catch SessionLogError.sessionNotFound {
            return 0
        }
        guard let config = try? await inbox.log.environmentConfig(session), let running = TurnRunner.remoteCallsRunning(events, config)
        else { return 0 }
        var answered = 0
        for call in running {
            do {
                let result = TurnRunner.remoteResult(useId: call.id, .text(Self.lostLease, isError: true))
                try await inbox.send([result], to: session, clientKey: "lapsed-lease:\(call.id)")
                answered += 1
            } catch SessionLogError.alreadyAnswered, SessionLogError.sessionTerminated {
                continue
            }
        }
        return answered
    }
}
