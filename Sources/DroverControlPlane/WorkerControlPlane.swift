import DroverCore
import DroverDatabase
import Foundation

/// Where a worker reads a session's credentials and repositories: this host's SQLite file when
/// it holds the session (the API's host), else the control plane's copy in Redis. Both give the
/// same `SessionControlCopy`, read once per call, and the same openers turn it into secrets, with
/// this host's vault key, for one call at a time.
public struct WorkerControlPlane: Sendable {
    public let store: ControlPlaneStore
    public let replica: ControlPlaneReplica
    public let keyring: @Sendable () throws -> VaultKeyring

    public init(store: ControlPlaneStore, replica: ControlPlaneReplica, keyring: @escaping @Sendable () throws -> VaultKeyring) {
        self.store = store
        self.replica = replica
        self.keyring = keyring
    }

    /// The session's copy, and whether it came from Redis; nil when neither place has one (a
    /// session with no vault and no repository, on a host without the SQLite file).
    func copy(of session: SessionID) async throws -> (copy: SessionControlCopy, fromRedis: Bool)? {
        if let local = try await store.sessionControlCopy(session: session.rawValue) { return (local, false) }
        return try await replica.session(session).map { ($0, true) }
    }

    /// The session's live credentials, sealed, and whether they came from the copy in Redis.
    public func credentialRows(session: SessionID) async throws -> (rows: [ControlPlaneStore.CredentialRow], fromCopy: Bool) {
        guard let (copy, fromRedis) = try await copy(of: session) else { return ([], true) }
        if fromRedis { return (try await replica.credentialRows(of: copy), true) }
        return (try await store.liveCredentials(vaults: copy.vaultIDs, workspace: copy.workspace), false)
    }

    public func variableCredentials(session: SessionID) async throws -> [VariableCredential] {
        let (rows, fromCopy) = try await credentialRows(session: session)
        return try opening(fromCopy) { try ControlPlaneStore.variableCredentials(rows, keyring: keyring) }
    }

    /// The credential for the server at `url`, and whether it came from the copy in Redis.
    public func serverCredential(session: SessionID, serverURL: String) async throws -> (credential: ServerCredential?, fromCopy: Bool) {
        let (rows, fromCopy) = try await credentialRows(session: session)
        return (try opening(fromCopy) { try ControlPlaneStore.serverCredential(rows, serverURL: serverURL, keyring: keyring) }, fromCopy)
    }

    public func repositories(session: SessionID) async throws -> [SessionRepository] {
        guard let (copy, fromRedis) = try await copy(of: session) else { return [] }
        return try opening(fromRedis) { try ControlPlaneStore.repositories(session: copy.resource, tokens: copy.repositoryTokens, keyring: keyring) }
    }

    /// A secret from the copy that does not open says which key the worker lacks.
    private func opening<T>(_ fromCopy: Bool, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            guard fromCopy, let failure = error as? VaultKeyring.Failure else { throw error }
            throw ReplicaError(
                description:
                    "\(failure.description). This worker reads the session's secrets from the control plane's copy in Redis and opens them with its own vault key: give every worker host the API's key in DROVER_VAULT_KEY"
            )
        }
    }
}
