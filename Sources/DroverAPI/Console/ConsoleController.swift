import DroverBrain
import DroverConsole
import DroverCore
import DroverDatabase
import DroverQueue
import DroverSessionLog
import DroverWebhooks
import Foundation
import Hummingbird

/// `/console`: server-rendered pages over the same stores and the same functions as the API
/// (`SessionController.sessions`, `DeploymentController.pause`, ...), so that what a person sees
/// here and what the SDK reads always agree. `ConsoleAccess` has already resolved the
/// caller's workspace and checked every POST's CSRF token when a handler runs.
struct ConsoleController: Sendable {
    let access: ConsoleAccess
    let store: ControlPlaneStore
    let log: SessionLog
    let queue: TaskQueue
    let sessions: SessionController
    let deployments: DeploymentController
    let tail: ConsoleTail
    let localWorkspaceID: String
    /// Batches, items and deployment runs a page shows at most.
    static let pageSize = 50
    /// Timeline entries a session page draws; the download has all of them.
    static let timelineEntries = 3000

    func addRoutes(to router: Router<APIRequestContext>) {
        router.get("/") { _, _ in ConsoleResponse.redirect("/console") }
        let console = router.group("/console")
        console.get { _, _ in ConsoleResponse.redirect("/console/batches") }
        console.get("assets/console.css") { _, _ in ConsoleResponse.asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        console.get("assets/console.js") { _, _ in ConsoleResponse.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        console.get("login", use: loginPage).post("login", use: login).post("logout", use: logout)
        console.get("batches", use: batchList).get("batches/:batch_id", use: batch)
        console.get("sessions", use: sessionList).get("sessions/:session_id", use: session)
        console.get("sessions/:session_id/tail") { request, context in
            let row = try await sessions.lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
            return try await tail.stream(try SessionID(row.id), workspace: context.workspace, request: request)
        }
        console.get("sessions/:session_id/export.html") { request, context in try await export(context, html: true) }
        console.get("sessions/:session_id/export.jsonl") { request, context in try await export(context, html: false) }
        console.get("deployments", use: deploymentList).get("deployments/:deployment_id", use: deployment)
        console.post("deployments/:deployment_id/:action", use: deploymentAction)
        console.get("queues", use: queueList).post("queues/:queue/:action", use: queueAction)
        console.get("webhooks", use: webhookList).post("webhooks/dead/:task_id/retry", use: webhookRetry)
    }

    private func frame(_ request: Request, _ context: APIRequestContext, _ title: String, section: String) -> ConsoleFrame {
        access.frame(context, title: title, section: section, notice: request.uri.queryParameters["notice"].map { String($0.prefix(300)) })
    }

    // MARK: Sign-in

    @Sendable func loginPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters["next"].map(String.init))
        if try await store.activeKeyCount() == 0 || context.consoleKey != nil { return ConsoleResponse.redirect(next) }
        return ConsoleResponse.page(ConsolePages.html(LoginPage(frame: frame(request, context, "Sign in", section: ""), error: nil, next: next)))
    }

    @Sendable func login(_ request: Request, context: APIRequestContext) async throws -> Response {
        let next = Self.safeNext(context.consoleForm["next"])
        let key = context.consoleForm["key", default: ""].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, try await store.workspace(forKey: key) != nil else {
            let page = LoginPage(
                frame: frame(request, context, "Sign in", section: ""),
                error: "That key is not an active API key of this server. Fix: paste the whole key `drover keys create` printed.", next: next)
            return ConsoleResponse.page(ConsolePages.html(page), status: .unauthorized)
        }
        var response = ConsoleResponse.redirect(next)
        response.setCookie(
            Cookie(
                name: ConsoleAccess.cookieName, value: key, path: ConsoleAccess.prefix, secure: Self.isHTTPS(request), httpOnly: true,
                sameSite: .strict))
        return response
    }

    @Sendable func logout(_ request: Request, context: APIRequestContext) async throws -> Response {
        var response = ConsoleResponse.redirect("/console/login")
        response.setCookie(
            Cookie(name: ConsoleAccess.cookieName, value: "", maxAge: 0, path: ConsoleAccess.prefix, httpOnly: true, sameSite: .strict))
        return response
    }

    /// Where to go after signing in: a console path, never another site.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/console"), !next.hasPrefix("//"), !next.contains("\\"), !next.contains("\r"), !next.contains("\n")
        else { return "/console/batches" }
        return next
    }

    /// Behind a TLS-terminating proxy the cookie is marked Secure.
    static func isHTTPS(_ request: Request) -> Bool {
        request.headers[.init("x-forwarded-proto")!]?.lowercased() == "https"
    }

    // MARK: Batches

    @Sendable func batchList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let offset = try Self.pageOffset(request)
        let rows = try await store.database.batches(
            workspace: context.workspace, includeUnowned: context.workspace == localWorkspaceID, offset: offset, limit: Self.pageSize + 1)
        let page = BatchListPage(
            frame: frame(request, context, "Batches", section: "batches"), batches: rows.prefix(Self.pageSize).map(Self.batchView),
            next: rows.count > Self.pageSize ? "/console/batches?page=page_\(offset + Self.pageSize)" : nil)
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    @Sendable func batch(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.parameters.require("batch_id")
        guard let row = try await store.database.batch(id, workspace: context.workspace, includeUnowned: context.workspace == localWorkspaceID)
        else { throw APIError.notFound("batch", String(id.prefix(100))) }
        let items = try await store.database.batchItems(row.id).map { ($0, JSONValue.decode($0.result ?? "{}").objectValue ?? [:]) }
        // A job's columns are the union of what its items reported, in name order.
        let columns = Set(items.flatMap { $0.1["columns"]?.objectValue?.keys ?? [:].keys }).sorted()
        let views = items.map { row, result in
            let cells = result["columns"]?.objectValue ?? [:]
            let tokens = (result["input_tokens"]?.intValue ?? 0, result["output_tokens"]?.intValue ?? 0)
            return ConsoleBatchItem(
                id: row.itemId.isEmpty ? row.itemKey : row.itemId, status: row.status,
                session: result["sessions"]?.arrayValue?.last?.stringValue ?? row.sessionId, attempts: result["attempts"]?.intValue ?? 0,
                duration: result["duration_seconds"]?.doubleValue.map { String(format: "%.1f s", $0) } ?? "-",
                tokens: tokens == (0, 0) ? "-" : "\(tokens.0) / \(tokens.1)",
                cells: columns.map { cells[$0].map(Self.cellText) ?? "" }, error: result["error"]?.stringValue)
        }
        let page = BatchPage(
            frame: frame(request, context, "Batch \(row.id)", section: "batches"), batch: Self.batchView(row), columns: columns, items: views)
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    static let finishedStatuses: Set<String> = ["succeeded", "failed", "timed_out", "cancelled"]

    static func batchView(_ row: MirrorDatabase.BatchRow) -> ConsoleBatch {
        let resource = JSONValue.decode(row.resource).objectValue ?? [:]
        let counts = (resource["counts"]?.objectValue ?? [:]).map { ConsoleCount(label: $0.key, value: $0.value.intValue ?? 0) }
            .sorted { $0.label < $1.label }
        return ConsoleBatch(
            id: row.id, name: row.name, status: row.status, created: shortTime(row.createdAt), items: resource["items"]?.intValue ?? 0,
            counts: counts, finishedStatuses: finishedStatuses, deployment: resource["deployment_id"]?.stringValue,
            model: resource["model"]?.stringValue)
    }

    static func cellText(_ value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        if case .null = value { return "" }
        return value.compactJSON
    }

    // MARK: Sessions

    @Sendable func sessionList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        var filters = SessionFilters()
        func text(_ name: Substring) -> String { parameters[name].map { String($0.prefix(200)).trimmingCharacters(in: .whitespaces) } ?? "" }
        (filters.status, filters.agent, filters.batch, filters.deployment) = (text("status"), text("agent"), text("batch"), text("deployment"))
        (filters.after, filters.before) = (text("after"), text("before"))
        var query = SessionQuery(paging: PageQuery(limit: Self.pageSize, offset: try Self.pageOffset(request)))
        if !filters.status.isEmpty {
            guard SessionQuery.knownStatuses.contains(filters.status) else {
                throw APIError.invalid("status", "'\(filters.status)' is not rescheduling, running, idle or terminated")
            }
            query.statuses = [filters.status]
        }
        query.agentID = filters.agent.isEmpty ? nil : filters.agent
        query.batchID = filters.batch.isEmpty ? nil : filters.batch
        query.deploymentID = filters.deployment.isEmpty ? nil : filters.deployment
        query.created = CreatedAtRange(
            after: try Self.instant(filters.after, field: "after"), before: try Self.instant(filters.before, field: "before", endOfMinute: true))
        let page = try await sessions.sessions(query, workspace: context.workspace)
        let view = SessionListPage(
            frame: frame(request, context, "Sessions", section: "sessions"), filters: filters, sessions: page.sessions.map(Self.sessionView),
            nextPage: page.next)
        return ConsoleResponse.page(ConsolePages.html(view))
    }

    @Sendable func session(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await sessions.lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let session = Self.sessionView(try await sessions.sessionJSON(row))
        let events = try await events(of: row)
        let timeline = SessionTimeline(session: row.id, status: session.status, events: events)
        let page = SessionPage(
            frame: frame(request, context, "Session \(row.id)", section: "sessions"), session: session, timeline: timeline,
            shown: Self.timelineEntries, threadLanes: try await threadLanes(row, events: events, primary: timeline))
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    func export(_ context: APIRequestContext, html: Bool) async throws -> Response {
        let row = try await sessions.lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let events = try await events(of: row)
        let jsonl = events.map { $0.json + "\n" }.joined()
        let status = try await sessions.sessionStatus(row.id)
        let body = html ? TimelinePage.render(SessionTimeline(session: row.id, status: status, events: events), jsonl: jsonl) : jsonl
        var response = ConsoleResponse.asset(body, type: html ? "text/html; charset=utf-8" : "application/x-ndjson")
        response.headers[.contentDisposition] = "attachment; filename=\"\(row.id).\(html ? "html" : "jsonl")\""
        return response
    }

    /// A coordinator's session as lanes: its primary thread, then each thread it started (read
    /// from the session's `events`, which the page has read already).
    func threadLanes(_ row: ControlPlaneStore.Row, events: [StoredEvent], primary: SessionTimeline) async throws -> ThreadLanes? {
        let session = try SessionID(row.id)
        let children = ThreadLedger(events).threads
        guard !children.isEmpty else { return nil }
        var lanes: [(lane: ThreadLanes.Lane, timeline: SessionTimeline)] = [
            (ThreadLanes.Lane(name: "coordinator", id: ThreadIDs.primary(of: session), status: primary.status), primary)
        ]
        for child in children {
            guard let thread = try? SessionID(child.id) else { continue }
            var events: [StoredEvent] = []
            _ = try await sessionLogCall { try await log.replay(thread, afterSeq: 0) { events.append($0) } }
            let status = try await sessionLogCall { try await log.meta(thread)?.status } ?? "idle"
            lanes.append(
                (
                    ThreadLanes.Lane(name: child.agentName, id: child.id, status: status),
                    SessionTimeline(session: child.id, status: status, events: events)
                ))
        }
        return ThreadLanes(lanes, shown: Self.timelineEntries)
    }

    /// Every event of the session, from SQLite where Redis no longer has them.
    func events(of row: ControlPlaneStore.Row) async throws -> [StoredEvent] {
        let id = try SessionID(row.id)
        var events: [StoredEvent] = []
        try await sessionLogCall { try await log.replay(id, afterSeq: 0) { events.append($0) } }
        return events
    }

    static func sessionView(_ json: JSONValue) -> ConsoleSession {
        let fields = json.objectValue ?? [:]
        let usage = fields["usage"]?.objectValue ?? [:]
        let agent = fields["agent"]?.objectValue
        let tokens = (usage["input_tokens"]?.intValue ?? 0, usage["output_tokens"]?.intValue ?? 0)
        return ConsoleSession(
            id: fields["id"]?.stringValue ?? "", title: fields["title"]?.stringValue ?? "", status: fields["status"]?.stringValue ?? "",
            agent: [agent?["name"]?.stringValue, agent?["id"]?.stringValue].compactMap { $0 }.joined(separator: " · "),
            created: shortTime(fields["created_at"]?.stringValue ?? ""), tokens: "\(tokens.0) / \(tokens.1)",
            activeSeconds: String(format: "%.1f s", usage["active_seconds"]?.doubleValue ?? 0))
    }

    /// A `datetime-local` value (the browser's minutes, read as UTC) or an RFC 3339 instant, as
    /// the text the store compares `created_at` with.
    static func instant(_ text: String, field: String, endOfMinute: Bool = false) throws -> Date? {
        guard !text.isEmpty else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let minutes = text.count == 16 ? text + ":00Z" : text
        guard var date = formatter.date(from: minutes) ?? ISO8601DateFormatter.withFractions.date(from: text) else {
            throw APIError.invalid(field, "'\(text.prefix(40))' is not a date and time", fix: "use the form's picker, or 2026-12-05T09:30")
        }
        if endOfMinute, text.count == 16 { date += 59.999 }
        return date
    }

    // MARK: Deployments

    @Sendable func deploymentList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let store = deployments.deployments(context.workspace)
        let views = try await store.list().map { Self.deploymentView(store.resource($0), runs: []) }
        let page = DeploymentListPage(frame: frame(request, context, "Deployments", section: "deployments"), deployments: views)
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    @Sendable func deployment(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await deployments.deployment(context.parameters.require("deployment_id"), workspace: context.workspace)
        let runs = try await store.database.deploymentRuns(deploymentID: row.id, workspace: context.workspace, limit: Self.pageSize)
            .map { JSONValue.decode($0) }
        let view = Self.deploymentView(deployments.deployments(context.workspace).resource(row), runs: runs)
        let page = DeploymentPage(frame: frame(request, context, "Deployment \(row.name)", section: "deployments"), deployment: view)
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    @Sendable func deploymentAction(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.parameters.require("deployment_id")
        let action = try context.parameters.require("action")
        let notice: String
        switch action {
        case "pause":
            _ = try await deployments.pause(id, workspace: context.workspace)
            notice = "Paused: no scheduled run starts until it is unpaused."
        case "unpause":
            _ = try await deployments.unpause(id, workspace: context.workspace)
            notice = "Unpaused: the next scheduled run starts on time."
        case "run":
            let run = try await deployments.run(id, workspace: context.workspace).objectValue ?? [:]
            let started = run["session_id"]?.stringValue.map { "session \($0)" } ?? run["batch_id"]?.stringValue.map { "batch \($0)" }
            notice =
                started.map { "Started \($0)." } ?? "The run did not start: \(run["error"]?.objectValue?["message"]?.stringValue ?? "see its row")."
        default:
            throw APIError(.notFound, "not_found_error", "\(action.prefix(40)) is not a deployment action (pause, unpause or run)")
        }
        return ConsoleResponse.redirect("/console/deployments/\(id)", notice: notice)
    }

    static func deploymentView(_ resource: JSONValue, runs: [JSONValue]) -> ConsoleDeployment {
        let fields = resource.objectValue ?? [:]
        let schedule = fields["schedule"]?.objectValue
        let reason = fields["paused_reason"]?.objectValue.map { reason in
            [reason["type"]?.stringValue, reason["error"]?.objectValue?["type"]?.stringValue].compactMap { $0 }.joined(separator: ": ")
        }
        let runViews = runs.map { run in
            let run = run.objectValue ?? [:]
            let error = run["error"]?.objectValue
            return ConsoleDeploymentRun(
                id: run["id"]?.stringValue ?? "", created: shortTime(run["created_at"]?.stringValue ?? ""),
                trigger: run["trigger_context"]?.objectValue?["type"]?.stringValue ?? "", session: run["session_id"]?.stringValue,
                batch: run["batch_id"]?.stringValue,
                error: error.map { [$0["type"]?.stringValue, $0["message"]?.stringValue].compactMap { $0 }.joined(separator: ": ") })
        }
        return ConsoleDeployment(
            id: fields["id"]?.stringValue ?? "", name: fields["name"]?.stringValue ?? "", status: fields["status"]?.stringValue ?? "",
            pausedReason: reason,
            schedule: schedule.map { "\($0["expression"]?.stringValue ?? "") (\($0["timezone"]?.stringValue ?? "UTC"))" } ?? "manual runs only",
            nextRuns: (schedule?["upcoming_runs_at"]?.arrayValue ?? []).compactMap(\.stringValue).prefix(3).map(shortTime),
            lastRun: schedule?["last_run_at"]?.stringValue.map(shortTime) ?? "-", runs: runViews)
    }

    // MARK: Queues

    @Sendable func queueList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let canAct = context.workspace == localWorkspaceID
        var views: [ConsoleQueue] = []
        for name in try await queue.queueNames() {
            let stats = try await queue.stats(name)
            let dead = canAct && stats.dead > 0 ? try await queue.deadTasks(name, limit: 20) : []
            views.append(
                ConsoleQueue(
                    name: stats.queue, ready: stats.ready, delayed: stats.delayed, leased: stats.leased, dead: stats.dead,
                    oldest: stats.oldestReadyAgeMs.map { String(format: "%.1f s", Double($0) / 1000) } ?? "-", paused: stats.paused,
                    deadTasks: dead.map {
                        ConsoleDeadTask(
                            id: $0.id, died: ControlPlaneStore.timestamp(Date(timeIntervalSince1970: Double($0.diedAtMs) / 1000)),
                            attempts: $0.attempts, error: String($0.lastError.prefix(300)))
                    }))
        }
        let page = QueueListPage(frame: frame(request, context, "Queues", section: "queues"), queues: views, canAct: canAct)
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    @Sendable func queueAction(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard context.workspace == localWorkspaceID else {
            throw APIError(
                .forbidden, "permission_error",
                "queues are shared by every workspace. Fix: sign in with a key of the `default` workspace, or run `drover queue` on the host")
        }
        let raw = try context.parameters.require("queue")
        let name: QueueName
        do {
            name = try QueueName(raw)
        } catch {
            throw APIError.invalid("queue", "\(error)")
        }
        let notice: String
        switch try context.parameters.require("action") {
        case "pause":
            try await queue.pause(name)
            notice = "Paused \(name.rawValue): workers take nothing from it until it is resumed."
        case "resume":
            try await queue.resume(name)
            notice = "Resumed \(name.rawValue)."
        case "requeue":
            var requeued = 0
            for task in try await queue.deadTasks(name, limit: 100_000) where try await queue.requeue(name, taskId: task.id).requeued {
                requeued += 1
            }
            notice = "Requeued \(requeued) dead task\(requeued == 1 ? "" : "s") of \(name.rawValue)."
        case "purge":
            let purged = try await queue.purge(name, includeLeased: false)
            notice =
                "Purged \(name.rawValue): \(purged.ready) ready, \(purged.delayed) delayed, \(purged.dead) dead; leased tasks are left to finish."
        case let action:
            throw APIError(.notFound, "not_found_error", "\(action.prefix(40)) is not a queue action (pause, resume, requeue or purge)")
        }
        return ConsoleResponse.redirect("/console/queues", notice: notice)
    }

    // MARK: Webhooks

    @Sendable func webhookList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let endpoints = try await store.database.webhookEndpoints(workspace: context.workspace)
        let dead = try await WebhookDeadLetters(queue: queue).list(limit: Self.pageSize, endpoints: Set(endpoints.map(\.id)))
        let page = WebhookListPage(
            frame: frame(request, context, "Webhooks", section: "webhooks"),
            endpoints: endpoints.map {
                ConsoleWebhookEndpoint(id: $0.id, url: $0.url, events: $0.events.joined(separator: ", "), created: Self.shortTime($0.createdAt))
            },
            deadDeliveries: dead.map {
                ConsoleDeadDelivery(
                    taskID: $0.taskID, endpointID: $0.endpointID, eventID: $0.eventID, type: $0.type,
                    died: Self.shortTime(ControlPlaneStore.timestamp(Date(timeIntervalSince1970: Double($0.diedAtMs) / 1000))),
                    attempts: $0.attempts, error: String($0.error.prefix(300)))
            })
        return ConsoleResponse.page(ConsolePages.html(page))
    }

    @Sendable func webhookRetry(_ request: Request, context: APIRequestContext) async throws -> Response {
        let taskID = try context.parameters.require("task_id")
        let endpoints = Set(try await store.database.webhookEndpoints(workspace: context.workspace).map(\.id))
        let letters = WebhookDeadLetters(queue: queue)
        // Only a dead delivery to one of this workspace's endpoints; any other id is not found.
        guard try await letters.list(limit: 100_000, endpoints: endpoints).contains(where: { $0.taskID == taskID }),
            try await letters.retry(taskID)
        else { throw APIError.notFound("dead webhook delivery", String(taskID.prefix(80))) }
        return ConsoleResponse.redirect("/console/webhooks", notice: "Queued \(taskID) again, with its attempts reset.")
    }

    // MARK: Shared

    static func pageOffset(_ request: Request) throws -> Int {
        guard let page = request.uri.queryParameters["page"] else { return 0 }
        guard page.hasPrefix("page_"), let offset = Int(page.dropFirst(5)), offset >= 0, offset <= 1_000_000 else {
            throw APIError.invalid("page", "'\(page.prefix(40))' is not a page cursor", fix: "follow the page's own Next link")
        }
        return offset
    }

    /// `2026-12-05T06:05:07.123456Z` as `2026-12-05 06:05:07`.
    static func shortTime(_ stamp: String) -> String {
        guard stamp.count >= 19 else { return stamp }
        return stamp.prefix(19).replacingOccurrences(of: "T", with: " ")
    }
}
