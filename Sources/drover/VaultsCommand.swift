import ArgumentParser
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverRedis
import DroverRuntime
import Foundation

/// `drover vaults rotate-key` and `rekey`: changing the key that seals vault secrets at rest.
struct VaultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vaults",
        abstract: "The key that seals vault secrets at rest: rotate it, and seal every secret again.",
        discussion: """
            Secrets are sealed with AES-256-GCM under DROVER_VAULT_KEY, or <data dir>/vault.key when it
            is unset. To rotate:
              with the key file:   drover vaults rotate-key   (keeps the old key as vault.key.previous,
                                   makes a new vault.key, seals everything again, then removes the old)
              with the variable:   set DROVER_VAULT_KEY to the new key and DROVER_VAULT_KEY_PREVIOUS to
                                   the old one, run `drover vaults rekey`, then unset the previous key.
            A running API reads the key file at each write, so it seals new secrets under the new key
            from the moment the file is replaced.
            """,
        subcommands: [RotateKey.self, Rekey.self]
    )

    static func store() throws -> (ControlPlaneStore, DroverConfiguration) {
        let configuration = try DroverConfiguration.fromEnvironment()
        return (ControlPlaneStore(database: try MirrorDatabase(path: configuration.databasePath.path)), configuration)
    }

    /// Publishes the secrets sealed anew to the control plane's copy in Redis, for workers on
    /// other hosts. Only a shared Redis (DROVER_REDIS_URL) has such workers; the embedded one
    /// is this host's alone, and the API publishes everything again when it starts.
    static func publish(_ store: ControlPlaneStore) async throws {
        guard let url = ProcessInfo.processInfo.environment["DROVER_REDIS_URL"], !url.isEmpty else { return }
        let redis = try await RedisClient.connect(url)
        defer { redis.close() }
        let (sessions, vaults) = try await ControlPlaneReplica(redis: redis).publishEverything(from: store)
        note("drover vaults: published \(vaults) vault(s) and \(sessions) session(s) to the control plane's copy in Redis")
    }

    struct Rekey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Seal every credential again under the current key.")

        func run() async throws {
            try await reportingErrors {
                let (store, configuration) = try VaultsCommand.store()
                let keyring = try VaultKeyring.load(dataDirectory: configuration.dataDirectory)
                let changed = try await store.resealCredentials(with: keyring)
                note("drover vaults: sealed \(changed) credential(s) again under key \(keyring.current.id) (\(keyring.source))")
                try await VaultsCommand.publish(store)
            }
        }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a new vault.key, and seal every credential again under it.")

        func run() async throws {
            try await reportingErrors {
                let (store, configuration) = try VaultsCommand.store()
                guard (ProcessInfo.processInfo.environment["DROVER_VAULT_KEY"] ?? "").isEmpty else {
                    throw FieldError(
                        field: "DROVER_VAULT_KEY", message: "the key comes from the environment, so there is no key file to rotate",
                        fix: "set DROVER_VAULT_KEY to a new key and DROVER_VAULT_KEY_PREVIOUS to the old one, then run `drover vaults rekey`")
                }
                let directory = configuration.dataDirectory
                let file = directory.appendingPathComponent("vault.key")
                let previous = directory.appendingPathComponent("vault.key.previous")
                // An earlier rotation that stopped part way: finish sealing under the current key first.
                if FileManager.default.fileExists(atPath: previous.path) {
                    _ = try await store.resealCredentials(with: try VaultKeyring.load(dataDirectory: directory))
                    try FileManager.default.removeItem(at: previous)
                }
                _ = try VaultKeyring.load(dataDirectory: directory)
                // The old key stays readable (as previous) until every secret is sealed anew.
                try FileManager.default.moveItem(at: file, to: previous)
                let keyring = try VaultKeyring.load(dataDirectory: directory)
                // A running API reads the key at each write: one that read the old key just
                // before the move may still be writing. Its row is sealed again below, once no
                // write can still hold the old key.
                try await Task.sleep(for: .seconds(2))
                let changed = try await store.resealCredentials(with: keyring)
                try FileManager.default.removeItem(at: previous)
                note("drover vaults: new key \(keyring.current.id) in \(file.path); sealed \(changed) credential(s) again under it")
                try await VaultsCommand.publish(store)
            }
        }
    }
}
