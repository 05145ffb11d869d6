/// Redis Cluster's key-to-slot rule: CRC16 (XMODEM) of the key's hash tag, modulo 16384.
///
/// The hash tag is what lies between the first `{` and the first `}` after it, when that is not
/// empty; otherwise the whole key. Drover gives every key that a script or a multi-key command
/// touches together one tag (`{q:NAME}`, `{sm:N}`, `{sched}`), so that they share a slot.
public enum RedisHashSlot {
    public static let count = 16384

    public static func of(_ key: String) -> Int {
        var utf8 = key.utf8[...]
        if let open = utf8.firstIndex(of: UInt8(ascii: "{")) {
            let afterOpen = utf8.index(after: open)
            if let close = utf8[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close > afterOpen {
                utf8 = utf8[afterOpen..<close]
            }
        }
        var crc: UInt16 = 0
        for byte in utf8 {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return Int(crc) & (count - 1)
    }

    /// The one slot all `keys` hash to; nil for no keys. Throws `.crossSlot` when they hash to
    /// several: Redis Cluster refuses such a command, so it must fail the same way on one server.
    public static func common(_ keys: some Collection<String>, command: String) throws(RedisError) -> Int? {
        guard let first = keys.first else { return nil }
        let slot = of(first)
        for key in keys.dropFirst() where of(key) != slot {
            throw .crossSlot(command: command, keys: Array(keys))
        }
        return slot
    }

    /// CRC16-CCITT (polynomial 0x1021, initial value 0), a byte at a time.
    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}

/// The keys of a command, by the rules of the commands Drover sends, for routing it to the node
/// that owns them. Commands without keys (`PING`, `INFO`, `SCRIPT`, `PUBLISH`, ...) may go to any
/// node.
enum RedisCommandKeys {
    static func of(_ arguments: [String]) -> ArraySlice<String> {
        guard let name = arguments.first?.uppercased() else { return [] }
        switch name {
        case "EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL", "FCALL_RO":
            guard arguments.count > 2, let count = Int(arguments[2]), count > 0, arguments.count >= 3 + count else { return [] }
            return arguments[3..<(3 + count)]
        case "XREAD", "XREADGROUP":
            // STREAMS k1 k2 ... id1 id2 ...: the keys are the first half of what follows.
            guard let streams = arguments.firstIndex(where: { $0.uppercased() == "STREAMS" }) else { return [] }
            let rest = arguments.count - streams - 1
            return arguments[(streams + 1)..<(streams + 1 + rest / 2)]
        case "XGROUP", "XINFO":
            return arguments.count > 2 ? arguments[2...2] : []
        case "BZPOPMIN", "BZPOPMAX", "BLPOP", "BRPOP":
            // The last argument is the timeout.
            return arguments.count > 2 ? arguments[1..<(arguments.count - 1)] : []
        case "DEL", "UNLINK", "EXISTS", "MGET", "TOUCH":
            return arguments.dropFirst()
        case "PING", "ECHO", "TIME", "INFO", "SCRIPT", "CLIENT", "CONFIG", "CLUSTER", "COMMAND", "DBSIZE", "FLUSHALL",
            "FLUSHDB", "SCAN", "KEYS", "PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "SHUTDOWN", "SLOWLOG", "AUTH",
            "SELECT", "HELLO", "ASKING", "READONLY", "WAIT", "LATENCY", "MEMORY", "DEBUG", "BGREWRITEAOF", "SAVE", "BGSAVE":
            return []
        default:
            return arguments.count > 1 ? arguments[1...1] : []
        }
    }
}
