import DroverCore
import DroverDatabase
import DroverRedis
import Foundation

/// The control plane's copy in Redis of what workers take from it: each session's vaults and
/// repositories (`drover:{sf:SESSION}:control`) and each live vault's credentials
/// (`drover:vault:ID`), secrets still sealed as SQLite holds them. A worker on a host without
/// the API's SQLite file reads its sessions' credentials and repositories here, and opens them
/// with the installation's vault key, which every worker host is given (`DROVER_VAULT_KEY`).
///
/// The process that changes the control plane publishes at once after each change; the API
/// publishes everything again when it starts, which mends a copy a crash left behind between a
/// SQLite write and its publication. A session with no vault and no repository has no copy.
public struct ControlPlaneReplica: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) {
        self.redis = redis
    }

    static func sessionKey(_ session: String) -> String { "drover:{sf:\(session)}:control" }
    static func vaultKey(_ vault: String) -> String { "drover:vault:\(vault)" }

    // MARK: Publishing, where the SQLite file is

    public func publish(session: String, from store: ControlPlaneStore) async throws {
        if let copy = try await store.sessionControlCopy(session: session), copy.isNeeded {
            _ = try await redis.send(["SET", Self.sessionKey(session), try Self.encode(copy)], idempotent: true).throwingErrorReply()
        } else {
            try await remove(session: session)
        }
    }

    public func publish(vault: String, from store: ControlPlaneStore) async throws {
        if let copy = try await store.vaultControlCopy(vault: vault) {
            _ = try await redis.send(["SET", Self.vaultKey(vault), try Self.encode(copy)], idempotent: true).throwingErrorReply()
        } else {
            _ = try await redis.send(["DEL", Self.vaultKey(vault)], idempotent: true).throwingErrorReply()
        }
    }

    public func remove(session: String) async throws {
        _ = try await redis.send(["DEL", Self.sessionKey(session)], idempotent: true).throwingErrorReply()
    }

    /// Publishes every session that needs a copy and every live vault; returns how many of each.
    @discardableResult
    public func publishEverything(from store: ControlPlaneStore) async throws -> (sessions: Int, vaults: Int) {
        let (sessions, vaults) = try await store.controlCopyIDs()
        for session in sessions { try await publish(session: session, from: store) }
        for vault in vaults { try await publish(vault: vault, from: store) }
        return (sessions.count, vaults.count)
    }

    // MARK: Reading, on any host

    /// The session's copy; nil when it has none (no vault, no repository).
    public func session(_ session: SessionID) async throws -> SessionControlCopy? {
        let reply = try await redis.send(["GET", Self.sessionKey(session.rawValue)], idempotent: true).throwingErrorReply()
        guard let text = reply.string else { return nil }
        return try Self.decode(SessionControlCopy.self, text)
    }

    /// The live credentials a session's copy draws on, sealed, oldest first.
    public func credentialRows(of copy: SessionControlCopy) async throws -> [ControlPlaneStore.CredentialRow] {
        guard !copy.vaultIDs.isEmpty else { return [] }
        let replies = try await redis.pipeline(copy.vaultIDs.map { ["GET", Self.vaultKey($0)] }, idempotent: true)
        var vaults: [String: VaultControlCopy] = [:]
        for (id, reply) in zip(copy.vaultIDs, replies) {
            guard let text = try reply.throwingErrorReply().string else { continue }
            vaults[id] = try Self.decode(VaultControlCopy.self, text)
        }
        return ControlPlaneStore.credentialRows(of: copy, vaults: vaults)
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw ReplicaError(
                description: "the control plane's copy in Redis could not be read (\(error)). Fix: restart the API, which publishes it again")
        }
    }
}

public struct ReplicaError: Error, CustomStringConvertible {
    public let description: String
}
