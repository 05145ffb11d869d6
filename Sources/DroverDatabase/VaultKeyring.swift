import Crypto
import DroverCore
import Foundation

/// The keys that seal vault secrets at rest: AES-256-GCM (swift-crypto), one current key that
/// seals, and earlier ones that still open what they sealed, until `drover vaults rekey` has
/// sealed everything again under the current one.
///
/// Each sealed secret is bound to the row it belongs to (its credential id is the associated
/// data), so a sealed value copied onto another row does not open. It records the id of the key
/// that sealed it (the first 16 hex digits of the key's SHA-256), never the key.
///
/// The current key is `DROVER_VAULT_KEY` (32 bytes, base64 or hex), with earlier keys in
/// `DROVER_VAULT_KEY_PREVIOUS` (comma-separated); without it, `<data dir>/vault.key`, made on
/// first use with 32 random bytes, mode 0600, and earlier keys in `vault.key.previous`.
public struct VaultKeyring: Sendable {
    public struct Key: Sendable {
        public let id: String
        private let bytes: Data
        var key: SymmetricKey { SymmetricKey(data: bytes) }

        init(bytes: Data) {
            self.bytes = bytes
            id = SHA256.hash(data: bytes).prefix(8).lowercaseHex
        }
    }

    public let current: Key
    public let previous: [Key]
    /// Where the current key came from, for messages: `DROVER_VAULT_KEY` or the file's path.
    public let source: String

    public init(current: Data, previous: [Data] = [], source: String = "a key given in code") {
        self.current = Key(bytes: current)
        self.previous = previous.map(Key.init(bytes:))
        self.source = source
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Seals `secret` for the row `binding` under the current key.
    public func seal(_ secret: Data, binding: String) throws -> (sealed: Data, keyID: String) {
        let box = try AES.GCM.seal(secret, using: current.key, authenticating: Data(binding.utf8))
        guard let combined = box.combined else { throw Failure(description: "AES-GCM gave no combined form") }
        return (combined, current.id)
    }

    /// Opens what `seal` made for `binding` under the key `keyID`.
    public func open(_ sealed: Data, keyID: String, binding: String) throws -> Data {
        guard let key = ([current] + previous).first(where: { $0.id == keyID }) else {
            throw Failure(
                description:
                    "a vault secret was sealed under key \(keyID), which is neither the current key (\(current.id), from \(source)) nor a previous one. Fix: put that key back in DROVER_VAULT_KEY_PREVIOUS (or vault.key.previous)"
            )
        }
        do {
            return try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key.key, authenticating: Data(binding.utf8))
        } catch {
            throw Failure(description: "a vault secret did not open under key \(keyID): it was changed, or moved from another row")
        }
    }

    /// Seals a credential's secret fields (`token`, `access_token`, ...) as one JSON object with
    /// sorted keys: the form every sealed credential has.
    public func seal(fields: [String: String], binding: String) throws -> (sealed: Data, keyID: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try seal(try encoder.encode(fields), binding: binding)
    }

    /// Opens what `seal(fields:binding:)` made.
    public func openFields(_ sealed: Data, keyID: String, binding: String) throws -> [String: String] {
        guard let fields = try? JSONDecoder().decode([String: String].self, from: try open(sealed, keyID: keyID, binding: binding)) else {
            throw Failure(description: "the sealed secret of \(binding) is not a set of secret fields")
        }
        return fields
    }

    /// The keyring for a data directory, from the environment or the key file.
    public static func load(dataDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> VaultKeyring {
        if let text = environment["DROVER_VAULT_KEY"], !text.isEmpty {
            let current = try decode(text, field: "DROVER_VAULT_KEY")
            let previous = try (environment["DROVER_VAULT_KEY_PREVIOUS"] ?? "").split(separator: ",").map {
                try decode(String($0), field: "DROVER_VAULT_KEY_PREVIOUS")
            }
            return VaultKeyring(current: current, previous: previous, source: "DROVER_VAULT_KEY")
        }
        let file = dataDirectory.appendingPathComponent("vault.key")
        let current = try readOrCreate(file)
        let previousFile = dataDirectory.appendingPathComponent("vault.key.previous")
        let previous = FileManager.default.fileExists(atPath: previousFile.path) ? [try readKeyFile(previousFile)] : []
        return VaultKeyring(current: current, previous: previous, source: file.path)
    }

    /// 32 bytes, given as base64 or as 64 hex digits.
    static func decode(_ text: String, field: String) throws -> Data {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.count == 64, let bytes = hexBytes(trimmed) { return bytes }
        if let bytes = Data(base64Encoded: trimmed), bytes.count == 32 { return bytes }
        throw Failure(
            description: "\(field) is not a 32-byte key. Fix: make one with `openssl rand -base64 32` (or unset it to use <data dir>/vault.key)")
    }

    private static func hexBytes(_ text: String) -> Data? {
        var bytes = Data()
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// Makes the key file if there is none, then reads it back. The key is written to a fresh
    /// file (0600, never through a link) and linked into place, which fails if another process
    /// got there first: both then read the one key that won, and neither ever reads half of one.
    static func readOrCreate(_ file: URL) throws -> Data {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: file.path) {
            let temporary = file.path + ".new-\(Identifier.make(prefix: "k").suffix(10))"
            let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Failure(description: "could not make \(temporary): \(String(cString: strerror(errno)))") }
            defer { unlink(temporary) }
            let key = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            let text = Array((key.base64EncodedString() + "\n").utf8)
            let written = write(fd, text, text.count)
            let synced = fsync(fd)
            close(fd)
            guard written == text.count, synced == 0 else {
                throw Failure(description: "could not write \(temporary): \(String(cString: strerror(errno)))")
            }
            if link(temporary, file.path) != 0 && errno != EEXIST {
                throw Failure(description: "could not make \(file.path): \(String(cString: strerror(errno)))")
            }
        }
        return try readKeyFile(file)
    }

    /// Reads a key file, refusing one that others can read or that is not a plain file.
    static func readKeyFile(_ file: URL) throws -> Data {
        var status = stat()
        guard lstat(file.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(description: "\(file.path) is not a plain file. Fix: remove it, or point DROVER_VAULT_KEY at the key")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw Failure(
                description: "\(file.path) can be read by other users (mode \(String(status.st_mode & 0o777, radix: 8))). Fix: chmod 600 \(file.path)"
            )
        }
        let text = try String(contentsOf: file, encoding: .utf8)
        return try decode(text, field: file.path)
    }
}
