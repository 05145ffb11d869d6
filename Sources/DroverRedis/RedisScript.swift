import Crypto

/// A Lua script run with `EVALSHA`, loaded on `NOSCRIPT`.
public struct RedisScript: Sendable {
    public let name: String
    public let source: String
    public let sha1: String
    /// Whether running it twice has the same effect as once, so that it may be retried after the
    /// connection broke with the outcome unknown.
    public let isIdempotent: Bool

    public init(name: String, idempotent: Bool, source: String) {
        self.name = name
        self.source = source
        self.isIdempotent = idempotent
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
