/// Which master serves each of a Redis Cluster's hash slots, as one node reported it
/// (`CLUSTER SLOTS`). A client's copy goes stale when slots move or a replica takes over; a
/// `MOVED` reply, or a node that cannot be reached, is the sign to read it again.
struct RedisClusterTopology: Sendable {
    /// The master of each slot, as an index into `masters`; -1 where no node serves the slot.
    private(set) var owners: [Int16]
    private(set) var masters: [RedisURL.Endpoint]

    static let empty = RedisClusterTopology(owners: Array(repeating: -1, count: RedisHashSlot.count), masters: [])

    func owner(of slot: Int) -> RedisURL.Endpoint? {
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// Whether every slot has a master: a cluster that can serve any key.
    var coversEverySlot: Bool { !owners.contains(-1) }

    /// Records one slot's new owner, as a `MOVED` reply names it, until the next full read.
    mutating func assign(_ slot: Int, to endpoint: RedisURL.Endpoint) {
        if let index = masters.firstIndex(of: endpoint) {
            owners[slot] = Int16(index)
        } else {
            masters.append(endpoint)
            owners[slot] = Int16(masters.count - 1)
        }
    }

    /// Parses a `CLUSTER SLOTS` reply: per range, `[start, end, [host, port, id, ...], replicas...]`.
    /// An empty host means "the node you asked"; `?` means the node's address is unknown.
    init(clusterSlots reply: RedisValue, askedNode: RedisURL.Endpoint) throws(RedisError) {
        self = .empty
        guard let ranges = reply.array else {
            throw .unexpectedReply("CLUSTER SLOTS answered \(reply), not a list of slot ranges")
        }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                0 <= start, start <= end, end < RedisHashSlot.count,
                let master = parts[2].array, master.count >= 2, let host = master[0].string, let port = master[1].int
            else {
                throw .unexpectedReply("CLUSTER SLOTS answered a range that is not [start, end, [host, port, ...], ...]: \(range)")
            }
            let endpoint: RedisURL.Endpoint
            if host.isEmpty {
                guard case .tcp(let askedHost, _) = askedNode else { continue }
                endpoint = .tcp(host: askedHost, port: Int(port))
            } else if host == "?" {
                continue
            } else {
                endpoint = .tcp(host: host, port: Int(port))
            }
            for slot in Int(start)...Int(end) { assign(slot, to: endpoint) }
        }
    }

    private init(owners: [Int16], masters: [RedisURL.Endpoint]) {
        self.owners = owners
        self.masters = masters
    }
}

/// Where a `MOVED` or `ASK` error reply sends a command: `MOVED 3999 127.0.0.1:6381`.
struct RedisRedirection: Sendable, Equatable {
    enum Kind: Sendable { case moved, ask }
    let kind: Kind
    let slot: Int
    let endpoint: RedisURL.Endpoint

    init?(_ reply: RedisValue) {
        guard case .error(let message) = reply else { return nil }
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<RedisHashSlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        var host = parts[2][..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.slot = slot
        self.endpoint = .tcp(host: String(host), port: port)
    }
}
