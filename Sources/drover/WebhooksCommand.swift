import ArgumentParser
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRuntime
import DroverWebhooks
import Foundation

struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Endpoints told of a workspace's events (signed as Standard Webhooks), and deliveries that gave up.",
        discussion: """
            `drover serve` and `drover api` deliver them: at least once, with a stable webhook-id, retried with
            backoff for about a day. See docs/webhooks.md.
            """,
        subcommands: [Add.self, List.self, Remove.self, Dead.self, Retry.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an endpoint and print its signing secret once (it cannot be shown again).")
        @Argument(help: "The URL deliveries are POSTed to (http or https).") var url: String
        @Option(help: "Comma-separated event types, or * for all (`drover webhooks add --help` lists them).") var events: String
        @Option(help: "The workspace whose events it gets.") var workspace = "default"
        @Flag(help: "Print the endpoint and its secret as JSON.") var json = false

        static var eventList: String { WebhookEventType.allCases.map(\.rawValue).joined(separator: ", ") }

        func validate() throws {
            guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), ["http", "https"].contains(scheme),
                let host = parts.host, !host.isEmpty, parts.user == nil, parts.password == nil
            else {
                throw ValidationError("URL: '\(url.prefix(100))' is not an http(s) URL with a host and no credentials; use https://HOST/PATH")
            }
            do {
                _ = try WebhookEventType.parseList(events)
            } catch {
                throw ValidationError("\(error)")
            }
            try KeysCommand.checkWorkspaceName(workspace)
        }

        func run() async throws {
            try await reportingErrors {
                let store = try KeysCommand.store()
                let workspaceID = try await store.workspace(named: workspace)
                let endpoint = try await store.database.addWebhookEndpoint(
                    workspace: workspaceID, url: url, events: try WebhookEventType.parseList(events))
                if json {
                    print(
                        JSONValue.object([
                            "id": .string(endpoint.id), "workspace_id": .string(workspaceID), "url": .string(url),
                            "events": .array(endpoint.events.map(JSONValue.string)), "secret": .string(endpoint.secret),
                        ]).compactJSON)
                    return
                }
                note(
                    "drover webhooks: \(endpoint.id) gets \(endpoint.events.joined(separator: ", ")) of \(workspaceID) at \(url); its signing secret below is shown once"
                )
                print(endpoint.secret)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints (never their secrets).")
        @Option(help: "Only this workspace's.") var workspace: String?

        func run() async throws {
            try await reportingErrors {
                let store = try KeysCommand.store()
                let endpoints = try await store.database.webhookEndpoints(workspace: workspace.map(ControlPlaneStore.workspaceID(named:)))
                if endpoints.isEmpty {
                    print("no webhook endpoints (add one with `drover webhooks add URL --events ...`)")
                    return
                }
                printTable(
                    header: ["ENDPOINT", "WORKSPACE", "URL", "EVENTS", "CREATED"],
                    rows: endpoints.map { [$0.id, $0.workspace, $0.url, $0.events.joined(separator: ","), $0.createdAt] })
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an endpoint; its deliveries still waiting are dropped.")
        @Argument(help: "The endpoint id (whep_...).") var id: String

        func run() async throws {
            try await reportingErrors {
                guard try await KeysCommand.store().database.removeWebhookEndpoint(id: id) else {
                    FileHandle.standardError.write(Data("drover: error: no webhook endpoint \(id). Fix: see `drover webhooks list`\n".utf8))
                    throw ExitCode(1)
                }
                print("removed \(id)")
            }
        }
    }

    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliveries that ran out of attempts, newest first, with their last error.")
        @Option(help: "How many to show.") var limit = 20
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await withRuntime(announce: !json) { runtime in
                let dead = try await WebhookDeadLetters(queue: TaskQueue(redis: runtime.redis)).list(limit: limit)
                if json {
                    print(JSONValue.array(dead.map(\.json)).compactJSON)
                } else if dead.isEmpty {
                    print("no dead webhook deliveries")
                } else {
                    printTable(
                        header: ["TASK", "ENDPOINT", "EVENT", "TYPE", "DIED", "ATTEMPTS", "LAST ERROR"],
                        rows: dead.map {
                            [
                                $0.taskID, $0.endpointID, $0.eventID, $0.type, formatEpochMilliseconds($0.diedAtMs), "\($0.attempts)",
                                String($0.error.prefix(80)),
                            ]
                        })
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send dead deliveries again, with their attempts reset.")
        @Argument(help: "Task ids (from `drover webhooks dead`).") var tasks: [String] = []
        @Flag(help: "Every dead delivery.") var all = false

        func validate() throws {
            if tasks.isEmpty == !all { throw ValidationError("name task ids, or pass --all") }
        }

        func run() async throws {
            try await withRuntime { runtime in
                let letters = WebhookDeadLetters(queue: TaskQueue(redis: runtime.redis))
                let ids = all ? try await letters.list(limit: 1_000_000).map(\.taskID) : tasks
                var failed = 0
                for id in ids {
                    let requeued = try await letters.retry(id)
                    print("\(id)\t\(requeued ? "queued again" : "not a dead delivery")")
                    if !requeued { failed += 1 }
                }
                if failed > 0 { throw ExitCode(1) }
            }
        }
    }
}
