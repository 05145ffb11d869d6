import DroverCore
import Foundation

// What each console page shows, as typed values: the API module fills them from its stores,
// and the templates read their properties by name.

/// What every page has around its content.
public struct ConsoleFrame: Sendable {
    public struct NavLink: Sendable {
        public let href: String
        public let label: String
        public let active: Bool
    }

    public let title: String
    public let nav: [NavLink]
    /// Put in every form that changes state; a POST without it is refused.
    public let csrf: String
    public let workspace: String
    /// True when a key signed in (a sign-out button then shows); false in local mode.
    public let signedIn: Bool
    /// A one-line outcome of the last action (`?notice=` after a redirect).
    public let notice: String?

    public static let sections = [
        ("batches", "Batches"), ("sessions", "Sessions"), ("deployments", "Deployments"), ("queues", "Queues"), ("webhooks", "Webhooks"),
    ]

    public init(title: String, section: String, csrf: String, workspace: String, signedIn: Bool, notice: String? = nil) {
        self.title = title
        nav = Self.sections.map { NavLink(href: "/console/\($0.0)", label: $0.1, active: $0.0 == section) }
        self.csrf = csrf
        self.workspace = workspace
        self.signedIn = signedIn
        self.notice = notice
    }
}

public struct ConsoleCount: Sendable {
    public let label: String
    public let value: Int

    public init(label: String, value: Int) {
        self.label = label
        self.value = value
    }
}

// MARK: Batches

public struct ConsoleBatch: Sendable {
    public let id: String
    public let name: String
    public let status: String
    public let created: String
    public let items: Int
    /// Items that finished, one way or another.
    public let finished: Int
    public let percent: Int
    public let counts: [ConsoleCount]
    public let deployment: String?
    public let model: String?

    public init(
        id: String, name: String, status: String, created: String, items: Int, counts: [ConsoleCount], finishedStatuses: Set<String>,
        deployment: String?, model: String?
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.created = created
        self.items = max(items, counts.reduce(0) { $0 + $1.value })
        self.counts = counts
        finished = counts.filter { finishedStatuses.contains($0.label) }.reduce(0) { $0 + $1.value }
        percent = self.items == 0 ? 0 : min(100, finished * 100 / self.items)
        self.deployment = deployment
        self.model = model
    }
}

public struct ConsoleBatchItem: Sendable {
    public let id: String
    public let status: String
    public let session: String?
    public let attempts: Int
    public let duration: String
    public let tokens: String
    /// One per column of the batch, in its order; empty where the item has none.
    public let cells: [String]
    public let error: String?

    public init(id: String, status: String, session: String?, attempts: Int, duration: String, tokens: String, cells: [String], error: String?) {
        self.id = id
        self.status = status
        self.session = session
        self.attempts = attempts
        self.duration = duration
        self.tokens = tokens
        self.cells = cells
        self.error = error
    }
}

public struct BatchListPage: Sendable {
    public let frame: ConsoleFrame
    public let batches: [ConsoleBatch]
    public let next: String?

    public init(frame: ConsoleFrame, batches: [ConsoleBatch], next: String?) {
        self.frame = frame
        self.batches = batches
        self.next = next
    }
}

public struct BatchPage: Sendable {
    public let frame: ConsoleFrame
    public let batch: ConsoleBatch
    public let columns: [String]
    public let items: [ConsoleBatchItem]

    public init(frame: ConsoleFrame, batch: ConsoleBatch, columns: [String], items: [ConsoleBatchItem]) {
        self.frame = frame
        self.batch = batch
        self.columns = columns
        self.items = items
    }
}

// MARK: Sessions

public struct ConsoleSession: Sendable {
    public let id: String
    public let title: String
    public let status: String
    public let agent: String
    public let created: String
    public let tokens: String
    public let activeSeconds: String

    public init(id: String, title: String, status: String, agent: String, created: String, tokens: String, activeSeconds: String) {
        self.id = id
        self.title = title
        self.status = status
        self.agent = agent
        self.created = created
        self.tokens = tokens
        self.activeSeconds = activeSeconds
    }
}

public struct ConsoleOption: Sendable {
    public let value: String
    public let label: String
    public let selected: Bool

    public init(value: String, label: String, selected: Bool) {
        self.value = value
        self.label = label
        self.selected = selected
    }
}

/// The filters as the form shows them back.
public struct SessionFilters: Sendable {
    public var status = ""
    public var agent = ""
    public var batch = ""
    public var deployment = ""
    public var after = ""
    public var before = ""

    public init() {}

    public var statusOptions: [ConsoleOption] {
        [ConsoleOption(value: "", label: "any", selected: status.isEmpty)]
            + ["running", "idle", "rescheduling", "terminated"].map { ConsoleOption(value: $0, label: $0, selected: $0 == status) }
    }

    /// The query string of these filters, to which a page cursor is added.
    public var query: String {
        let pairs = [("status", status), ("agent", agent), ("batch", batch), ("deployment", deployment), ("after", after), ("before", before)]
        var components = URLComponents()
        components.queryItems = pairs.filter { !$0.1.isEmpty }.map { URLQueryItem(name: $0.0, value: $0.1) }
        return components.percentEncodedQuery ?? ""
    }
}

public struct SessionListPage: Sendable {
    public let frame: ConsoleFrame
    public let filters: SessionFilters
    public let statusOptions: [ConsoleOption]
    public let sessions: [ConsoleSession]
    /// The href of the next page, if there is one.
    public let next: String?

    public init(frame: ConsoleFrame, filters: SessionFilters, sessions: [ConsoleSession], nextPage: String?) {
        self.frame = frame
        self.filters = filters
        statusOptions = filters.statusOptions
        self.sessions = sessions
        let query = filters.query
        next = nextPage.map { "/console/sessions?\(query.isEmpty ? "" : query + "&")page=\($0)" }
    }
}

public struct SessionPage: Sendable {
    public let frame: ConsoleFrame
    public let session: ConsoleSession
    public let summary: TimelineSummary
    public let entries: [TimelineEntryView]
    /// Where the live tail starts: the last event shown.
    public let lastSeq: Int64
    /// Set while the session can still change: the script then follows it.
    public let tailURL: String?
    /// Events older than those shown, left out to keep the page small; nil when none are.
    public let omitted: Int?
    /// A coordinator's session: its threads as lanes of one timeline.
    public let threadLanes: ThreadLanes?

    public init(frame: ConsoleFrame, session: ConsoleSession, timeline: SessionTimeline, shown: Int, threadLanes: ThreadLanes? = nil) {
        self.threadLanes = threadLanes
        self.frame = frame
        self.session = session
        summary = TimelineSummary(timeline)
        let entries = timeline.entries.suffix(shown)
        omitted = timeline.entries.count > entries.count ? timeline.entries.count - entries.count : nil
        self.entries = entries.map(TimelineEntryView.init)
        lastSeq = timeline.entries.last?.seq ?? 0
        tailURL = "/console/sessions/\(session.id)/tail"
    }
}

// MARK: Deployments

public struct ConsoleDeploymentRun: Sendable {
    public let id: String
    public let created: String
    public let trigger: String
    public let session: String?
    public let batch: String?
    public let error: String?

    public init(id: String, created: String, trigger: String, session: String?, batch: String?, error: String?) {
        self.id = id
        self.created = created
        self.trigger = trigger
        self.session = session
        self.batch = batch
        self.error = error
    }
}

public struct ConsoleDeployment: Sendable {
    public let id: String
    public let name: String
    public let status: String
    public let paused: Bool
    public let pausedReason: String?
    public let schedule: String
    public let nextRuns: [String]
    public let lastRun: String
    public let runs: [ConsoleDeploymentRun]

    public init(
        id: String, name: String, status: String, pausedReason: String?, schedule: String, nextRuns: [String], lastRun: String,
        runs: [ConsoleDeploymentRun]
    ) {
        self.id = id
        self.name = name
        self.status = status
        paused = status == "paused"
        self.pausedReason = pausedReason
        self.schedule = schedule
        self.nextRuns = nextRuns
        self.lastRun = lastRun
        self.runs = runs
    }
}

public struct DeploymentListPage: Sendable {
    public let frame: ConsoleFrame
    public let deployments: [ConsoleDeployment]

    public init(frame: ConsoleFrame, deployments: [ConsoleDeployment]) {
        self.frame = frame
        self.deployments = deployments
    }
}

public struct DeploymentPage: Sendable {
    public let frame: ConsoleFrame
    public let deployment: ConsoleDeployment

    public init(frame: ConsoleFrame, deployment: ConsoleDeployment) {
        self.frame = frame
        self.deployment = deployment
    }
}

// MARK: Queues

public struct ConsoleDeadTask: Sendable {
    public let id: String
    public let died: String
    public let attempts: Int
    public let error: String

    public init(id: String, died: String, attempts: Int, error: String) {
        self.id = id
        self.died = died
        self.attempts = attempts
        self.error = error
    }
}

public struct ConsoleQueue: Sendable {
    public let name: String
    public let ready: Int
    public let delayed: Int
    public let leased: Int
    public let dead: Int
    public let oldest: String
    public let paused: Bool
    public let deadTasks: [ConsoleDeadTask]

    public init(name: String, ready: Int, delayed: Int, leased: Int, dead: Int, oldest: String, paused: Bool, deadTasks: [ConsoleDeadTask]) {
        self.name = name
        self.ready = ready
        self.delayed = delayed
        self.leased = leased
        self.dead = dead
        self.oldest = oldest
        self.paused = paused
        self.deadTasks = deadTasks
    }
}

public struct QueueListPage: Sendable {
    public let frame: ConsoleFrame
    public let queues: [ConsoleQueue]
    /// Queues are shared by every workspace: only the host's operator may change them.
    public let canAct: Bool

    public init(frame: ConsoleFrame, queues: [ConsoleQueue], canAct: Bool) {
        self.frame = frame
        self.queues = queues
        self.canAct = canAct
    }
}

// MARK: Webhooks

public struct ConsoleWebhookEndpoint: Sendable {
    public let id: String
    public let url: String
    public let events: String
    public let created: String

    public init(id: String, url: String, events: String, created: String) {
        self.id = id
        self.url = url
        self.events = events
        self.created = created
    }
}

public struct ConsoleDeadDelivery: Sendable {
    public let taskID: String
    public let endpointID: String
    public let eventID: String
    public let type: String
    public let died: String
    public let attempts: Int
    public let error: String

    public init(taskID: String, endpointID: String, eventID: String, type: String, died: String, attempts: Int, error: String) {
        self.taskID = taskID
        self.endpointID = endpointID
        self.eventID = eventID
        self.type = type
        self.died = died
        self.attempts = attempts
        self.error = error
    }
}

public struct WebhookListPage: Sendable {
    public let frame: ConsoleFrame
    public let endpoints: [ConsoleWebhookEndpoint]
    public let deadDeliveries: [ConsoleDeadDelivery]

    public init(frame: ConsoleFrame, endpoints: [ConsoleWebhookEndpoint], deadDeliveries: [ConsoleDeadDelivery]) {
        self.frame = frame
        self.endpoints = endpoints
        self.deadDeliveries = deadDeliveries
    }
}

// MARK: Sign-in and errors

public struct LoginPage: Sendable {
    public let frame: ConsoleFrame
    public let error: String?
    public let next: String

    public init(frame: ConsoleFrame, error: String?, next: String) {
        self.frame = frame
        self.error = error
        self.next = next
    }
}

public struct MessagePage: Sendable {
    public let frame: ConsoleFrame
    public let heading: String
    public let message: String

    public init(frame: ConsoleFrame, heading: String, message: String) {
        self.frame = frame
        self.heading = heading
        self.message = message
    }
}
