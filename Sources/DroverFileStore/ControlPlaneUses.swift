import DroverCore
import DroverRedis
import Foundation

/// What a session takes from the control plane's SQLite file (`DROVER_DB`) beyond its files:
/// vault credentials and git repositories. The API notes it in Redis, which every host reaches,
/// so that a worker on a host without that file (whose own control plane has never heard of the
/// session) refuses the session's tool calls with the reason, rather than running them with no
/// credential and no clone as if the session had none.
public struct ControlPlaneUses: Sendable {
    public enum Use: String, Sendable, CaseIterable {
        case vaults
        case repositories

        var what: String {
            switch self {
            case .vaults: "vault credentials"
            case .repositories: "git repositories"
            }
        }
    }

    public let redis: RedisClient

    public init(redis: RedisClient) {
        self.redis = redis
    }

    static func key(_ session: SessionID) -> String { "drover:{sf:\(session.rawValue)}:uses" }

    /// Records what the session uses now (an update replaces it); nothing is kept for none.
    public func record(_ session: SessionID, _ uses: Set<Use>) async throws {
        let key = Self.key(session)
        if uses.isEmpty {
            _ = try await redis.send(["DEL", key]).throwingErrorReply()
        } else {
            _ = try await redis.send(
                ["SET", key, uses.map(\.rawValue).sorted().joined(separator: ","), "EX", String(FileStoreLimits.defaultRetentionSeconds)],
                idempotent: true
            )
            .throwingErrorReply()
        }
    }

    /// Records what a session resource (the API's JSON of a session) uses.
    public func record(_ session: SessionID, resource: [String: JSONValue]) async throws {
        var uses = Set<Use>()
        if !(resource["vault_ids"]?.arrayValue ?? []).isEmpty { uses.insert(.vaults) }
        if (resource["resources"]?.arrayValue ?? []).contains(where: { $0.objectValue?["type"]?.stringValue == "github_repository" }) {
            uses.insert(.repositories)
        }
        try await record(session, uses)
    }

    public func uses(_ session: SessionID) async throws -> Set<Use> {
        let text = try await redis.send(["GET", Self.key(session)], idempotent: true).throwingErrorReply().string ?? ""
        return Set(text.split(separator: ",").compactMap { Use(rawValue: String($0)) })
    }

    /// Throws when the session uses `use` and the caller's control plane does not know the
    /// session (`known` false): this worker's host lacks the API's SQLite file.
    public func check(_ session: SessionID, _ use: Use, known: Bool) async throws {
        guard !known, try await uses(session).contains(use) else { return }
        throw Missing(session: session, use: use)
    }

    public struct Missing: Error, CustomStringConvertible {
        public let session: SessionID
        public let use: Use
        public var description: String {
            "session \(session) uses \(use.what), which live in the API's SQLite file (DROVER_DB), and this worker's host does not share that file. Fix: run the worker with DROVER_DB pointing at the API's file (shared storage), or on the API's host"
        }
    }
}
