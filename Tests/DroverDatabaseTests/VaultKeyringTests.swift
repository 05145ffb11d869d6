import DroverCore
import DroverDatabase
import DroverTesting
import Foundation
import Testing

@Suite("Vault keyring")
struct VaultKeyringTests {
    private func scratch() throws -> URL {
        let directory = scratchDirectory("keyring")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("a sealed secret opens for its own row only, and not at all once changed")
    func sealing() throws {
        let keyring = VaultKeyring(current: Data(repeating: 7, count: 32))
        let secret = Data("hunter2".utf8)
        let (sealed, keyID) = try keyring.seal(secret, binding: "vcrd_a")
        #expect(sealed.range(of: secret) == nil)
        #expect(try keyring.open(sealed, keyID: keyID, binding: "vcrd_a") == secret)
        #expect(throws: VaultKeyring.Failure.self) { try keyring.open(sealed, keyID: keyID, binding: "vcrd_b") }
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        #expect(throws: VaultKeyring.Failure.self) { try keyring.open(tampered, keyID: keyID, binding: "vcrd_a") }
        // Sealing twice gives two different texts (a fresh nonce each time).
        #expect(try keyring.seal(secret, binding: "vcrd_a").sealed != sealed)
    }

    @Test("after a rotation the previous key still opens what it sealed, and an unknown key is named with the fix")
    func rotation() throws {
        let old = VaultKeyring(current: Data(repeating: 1, count: 32))
        let (sealed, oldID) = try old.seal(Data("s".utf8), binding: "vcrd_x")
        let rotated = VaultKeyring(current: Data(repeating: 2, count: 32), previous: [Data(repeating: 1, count: 32)])
        #expect(rotated.current.id != oldID)
        #expect(try rotated.open(sealed, keyID: oldID, binding: "vcrd_x") == Data("s".utf8))
        let forgotten = VaultKeyring(current: Data(repeating: 2, count: 32))
        #expect {
            try forgotten.open(sealed, keyID: oldID, binding: "vcrd_x")
        } throws: { error in
            "\(error)".contains(oldID) && "\(error)".contains("DROVER_VAULT_KEY_PREVIOUS")
        }
    }

    @Test("the key file is made once, 0600, and reused; a readable or malformed key is refused with the fix")
    func keyFile() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try VaultKeyring.load(dataDirectory: directory, environment: [:])
        let second = try VaultKeyring.load(dataDirectory: directory, environment: [:])
        #expect(first.current.id == second.current.id)
        let file = directory.appendingPathComponent("vault.key").path
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        chmod(file, 0o644)
        #expect {
            try VaultKeyring.load(dataDirectory: directory, environment: [:])
        } throws: { error in
            "\(error)".contains("chmod 600")
        }
        let fromEnvironment = try VaultKeyring.load(
            dataDirectory: directory, environment: ["DROVER_VAULT_KEY": Data(repeating: 9, count: 32).base64EncodedString()])
        #expect(fromEnvironment.source == "DROVER_VAULT_KEY")
        #expect {
            try VaultKeyring.load(dataDirectory: directory, environment: ["DROVER_VAULT_KEY": "too-short"])
        } throws: { error in
            "\(error)".contains("DROVER_VAULT_KEY") && "\(error)".contains("openssl rand -base64 32")
        }
    }

    @Test("rekeying seals every credential again under the current key; the old key is then not needed")
    func rekey() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = ControlPlaneStore(database: try MirrorDatabase(path: directory.appendingPathComponent("d.db").path))
        let old = VaultKeyring(current: Data(repeating: 3, count: 32))
        try await store.insert(.vaults, .init(id: "vlt_a", workspace: "w", createdAt: "2026-01-01T00:00:00Z", resource: "{}"))
        for id in ["vcrd_1", "vcrd_2"] {
            let (sealed, keyID) = try old.seal(Data("secret-\(id)".utf8), binding: id)
            try await store.insertCredential(
                .init(id: id, vault: "vlt_a", workspace: "w", createdAt: "2026-01-01T00:00:00Z", resource: "{}", sealed: sealed, keyID: keyID))
        }
        let rotated = VaultKeyring(current: Data(repeating: 4, count: 32), previous: [Data(repeating: 3, count: 32)])
        #expect(try await store.resealCredentials(with: rotated) == 2)
        #expect(try await store.resealCredentials(with: rotated) == 0)
        let alone = VaultKeyring(current: Data(repeating: 4, count: 32))
        for row in try await store.liveCredentials(vaults: ["vlt_a"], workspace: "w") {
            #expect(row.keyID == alone.current.id)
            #expect(try alone.open(row.sealed, keyID: row.keyID, binding: row.id) == Data("secret-\(row.id)".utf8))
        }
    }
}
