import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverRedis
import DroverTesting
import Foundation
import Testing

/// The control plane's copy in Redis, which workers on hosts without the API's SQLite file read
/// their sessions' credentials and repositories from.
@Suite("Control plane copy for workers on other hosts")
struct ControlPlaneReplicaTests {
    let key = Data((0..<32).map { UInt8($0) })

    /// A control plane with a vault of two credentials in workspace `w1`, and a session of `w1`
    /// naming it and a vault of another workspace, with a repository and its token.
    func seeded(_ directory: URL) async throws -> (ControlPlaneStore, SessionID, vault: String) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = ControlPlaneStore(database: try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path))
        let keyring = VaultKeyring(current: key)
        let now = ControlPlaneStore.timestamp()
        try await store.insert(.vaults, .init(id: "vlt_a", workspace: "w1", createdAt: now, resource: "{}"))
        try await store.insert(.vaults, .init(id: "vlt_other", workspace: "w2", createdAt: now, resource: "{}"))
        for (id, vault, name) in [("vcrd_1", "vlt_a", "TOKEN_ONE"), ("vcrd_2", "vlt_a", "TOKEN_TWO"), ("vcrd_x", "vlt_other", "FOREIGN")] {
            let (sealed, keyID) = try keyring.seal(fields: ["secret_value": "secret-of-\(id)"], binding: id)
            let auth: JSONValue = .object([
                "type": "environment_variable", "secret_name": .string(name), "networking": .object(["type": "unrestricted"]),
            ])
            try await store.insertCredential(
                .init(
                    id: id, vault: vault, workspace: vault == "vlt_a" ? "w1" : "w2", createdAt: now + id,
                    resource: JSONValue.object(["auth": auth]).compactJSON, sealed: sealed, keyID: keyID))
        }
        let session = SessionID.make()
        let resource: JSONValue = .object([
            "vault_ids": .array(["vlt_a", "vlt_other"]),
            "resources": .array([
                .object(["type": "github_repository", "id": "sesrsc_r", "url": "https://git.example/acme/site.git", "mount_path": "/workspace/site"])
            ]),
        ])
        try await store.insert(.sessions, .init(id: session.rawValue, workspace: "w1", createdAt: now, resource: resource.compactJSON))
        let (sealed, keyID) = try keyring.seal(Data("ghp_repository".utf8), binding: "sesrsc_r")
        try await store.saveRepositoryToken(resource: "sesrsc_r", session: session.rawValue, workspace: "w1", sealed: sealed, keyID: keyID)
        return (store, session, "vlt_a")
    }

    @Test("a worker with an empty control plane reads the session's credentials and repository from the copy, as the API's host would")
    func copyServesAnotherHost() async throws {
        let directory = scratchDirectory("replica")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withRedisClient { redis, _ in
            let (store, session, vault) = try await seeded(directory.appendingPathComponent("a"))
            let replica = ControlPlaneReplica(redis: redis)
            let published = try await replica.publishEverything(from: store)
            #expect(published.sessions == 1 && published.vaults == 2)

            let elsewhere = ControlPlaneStore(database: try MirrorDatabase(path: directory.appendingPathComponent("b.db").path))
            let local = WorkerControlPlane(store: store, replica: replica, keyring: { VaultKeyring(current: key) })
            let remote = WorkerControlPlane(store: elsewhere, replica: replica, keyring: { VaultKeyring(current: key) })
            let here = try await local.variableCredentials(session: session)
            let there = try await remote.variableCredentials(session: session)
            // The other workspace's vault is never drawn on, whichever side reads.
            #expect(there.map(\.variable) == ["TOKEN_ONE", "TOKEN_TWO"] && there.map(\.secret) == ["secret-of-vcrd_1", "secret-of-vcrd_2"])
            #expect(here.map(\.id) == there.map(\.id))
            #expect(try await remote.repositories(session: session).map(\.token) == ["ghp_repository"])
            // Nothing in Redis is a secret in the clear.
            for key in try await redis.scanKeys(matching: "drover:*") {
                let value = try await redis.send(["GET", key]).string ?? ""
                #expect(!value.contains("secret-of-") && !value.contains("ghp_repository"), "\(key)")
            }

            // A credential archived and published is gone from the other host's next read.
            try await store.updateCredential("vcrd_1", workspace: "w1", resource: nil, sealed: nil, archivedAt: ControlPlaneStore.timestamp())
            try await replica.publish(vault: vault, from: store)
            #expect(try await remote.variableCredentials(session: session).map(\.id) == ["vcrd_2"])
            // So is an archived vault, and a deleted session's copy.
            try await store.update(.vaults, id: vault, workspace: "w1", resource: nil, archivedAt: ControlPlaneStore.timestamp())
            try await replica.publish(vault: vault, from: store)
            #expect(try await remote.variableCredentials(session: session).isEmpty)
            try await replica.remove(session: session.rawValue)
            #expect(try await remote.repositories(session: session).isEmpty)

            // A session with neither vaults nor repositories has no copy at all.
            let plain = SessionID.make()
            try await store.insert(.sessions, .init(id: plain.rawValue, workspace: "w1", createdAt: ControlPlaneStore.timestamp(), resource: "{}"))
            try await replica.publish(session: plain.rawValue, from: store)
            #expect(try await replica.session(plain) == nil)
        }
    }

    @Test("a worker host without the installation's vault key is told which key it lacks and where to put it")
    func wrongKeyNamesTheFix() async throws {
        let directory = scratchDirectory("replica-key")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withRedisClient { redis, _ in
            let (store, session, _) = try await seeded(directory.appendingPathComponent("a"))
            let replica = ControlPlaneReplica(redis: redis)
            try await replica.publishEverything(from: store)
            let elsewhere = ControlPlaneStore(database: try MirrorDatabase(path: directory.appendingPathComponent("b.db").path))
            let stranger = WorkerControlPlane(store: elsewhere, replica: replica, keyring: { VaultKeyring(current: Data(repeating: 7, count: 32)) })
            do {
                _ = try await stranger.variableCredentials(session: session)
                Issue.record("secrets opened under another key")
            } catch {
                #expect("\(error)".contains("DROVER_VAULT_KEY"), "\(error)")
            }
        }
    }
}
