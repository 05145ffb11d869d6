import ArgumentParser
import DroverCore
import DroverDatabase
import DroverRuntime
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "API keys: each belongs to a workspace; only its SHA-256 is stored.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    static func store() throws -> ControlPlaneStore {
        let configuration = try DroverConfiguration.fromEnvironment()
        return ControlPlaneStore(database: try MirrorDatabase(path: configuration.databasePath.path))
    }

    /// `--workspace NAME`: what `ControlPlaneStore.workspace(named:)` makes an id of.
    static func checkWorkspaceName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45
        }
        guard !name.isEmpty, name.count <= 64, allowed else {
            throw ValidationError("--workspace: use 1 to 64 letters, digits, '-' or '_'")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once (it cannot be shown again).")
        @Option(help: "The workspace (created on first use): letters, digits, '-' and '_'.") var workspace: String

        func validate() throws {
            try KeysCommand.checkWorkspaceName(workspace)
        }

        func run() async throws {
            try await reportingErrors {
                let created = try await KeysCommand.store().createKey(workspace: workspace)
                note("drover keys: created \(created.id) in \(created.workspace); the key below is shown once")
                print(created.key)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (ids and workspaces, never the secrets).")
        func run() async throws {
            try await reportingErrors {
                for key in try await KeysCommand.store().keys() {
                    print([key.id, key.workspace, key.createdAt, key.revokedAt.map { "revoked \($0)" } ?? "active"].joined(separator: "  "))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id; requests with it answer 401 from then on.")
        @Argument(help: "The key id (apikey_...).") var id: String

        func run() async throws {
            try await reportingErrors {
                guard try await KeysCommand.store().revokeKey(id: id) else {
                    FileHandle.standardError.write(Data("drover: error: no active key \(id). Fix: see `drover keys list`\n".utf8))
                    throw ExitCode(1)
                }
                print("revoked \(id)")
            }
        }
    }
}
