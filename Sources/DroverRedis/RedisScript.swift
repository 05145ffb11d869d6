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

extension RedisScript {
    /// Lua for scripts that stamp times from Redis' clock: `now_parts()` gives `TIME` as
    /// (seconds, microseconds), `now_ms()` as milliseconds, `iso8601(sec, usec)` the RFC 3339
    /// text with microseconds, and `fmt(n)` a number as all its digits.
    public static let clockFunctions = #"""
        local function now_parts()
          local t = redis.call('TIME')
          return tonumber(t[1]), tonumber(t[2])
        end
        local function now_ms()
          local sec, usec = now_parts()
          return sec * 1000 + math.floor(usec / 1000)
        end
        -- Lua prints numbers with 14 significant digits; scores and deadlines need all of theirs.
        local function fmt(n) return string.format('%.0f', n) end
        -- RFC 3339 with microseconds, from Unix seconds (civil-from-days, H. Hinnant).
        local function iso8601(sec, usec)
          local days = math.floor(sec / 86400)
          local rem = sec - days * 86400
          local z = days + 719468
          local era = math.floor(z / 146097)
          local doe = z - era * 146097
          local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
          local y = yoe + era * 400
          local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
          local mp = math.floor((5 * doy + 2) / 153)
          local d = doy - math.floor((153 * mp + 2) / 5) + 1
          local m = mp + 3
          if mp >= 10 then m = mp - 9 end
          if m <= 2 then y = y + 1 end
          return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', y, m, d,
            math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, usec)
        end

        """#
}
