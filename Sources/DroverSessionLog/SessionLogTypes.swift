import DroverCore
import DroverRedis
import Foundation

/// Number of mirror shards. Part of the key layout: changing it moves every session's keys.
let mirrorShardCount = 16

/// A session's Redis keys. They carry the hash tag of the session's mirror shard, so that one
/// script can append to the session's stream and to the shard's mirror stream atomically, within
/// one Redis Cluster slot.
struct SessionKeys: Sendable {
    let shard: Int
    let log, meta, idempotency, mirror: String

    init(_ session: SessionID) {
        var hash: UInt32 = 2_166_136_261
        for byte in session.rawValue.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        shard = Int(hash % UInt32(mirrorShardCount))
        let tag = Self.tag(shard)
        let base = "drover:\(tag):s:\(session.rawValue):"
        log = base + "log"
        meta = base + "meta"
        idempotency = base + "idem"
        mirror = Self.mirror(shard)
    }

    static func tag(_ shard: Int) -> String { "{sm:\(shard)}" }
    static func mirror(_ shard: Int) -> String { "drover:\(tag(shard)):mirror" }
}

/// An event to append, encoded once: its type and its fields, without `id` and `processed_at`,
/// which the log assigns. Made from a typed payload, or from a client's JSON once checked
/// against the wire types, so the log holds no event shape built by hand.
public struct NewEvent: Sendable, Equatable {
    public let payload: SessionEventPayload
    /// Compact JSON object starting with `{"type":...`.
    public let json: String

    public var type: SessionEventType { payload.type }

    public init(_ payload: SessionEventPayload) {
        self.init(payload, fields: payload.fields)
    }

    /// `fields` are what is stored: the payload's own, or the JSON a client sent for it.
    private init(_ payload: SessionEventPayload, fields: [String: JSONValue]) {
        self.payload = payload
        var body = fields
        body.removeValue(forKey: "id")
        body.removeValue(forKey: "processed_at")
        body.removeValue(forKey: "type")
        let rest = JSONValue.object(body).compactJSON
        let typeField = "{\"type\":\"\(payload.type.rawValue)\""
        json = rest == "{}" ? typeField + "}" : typeField + "," + rest.dropFirst()
    }

    /// Parses events a client sent (`{"events": [...]}` or a bare array): each must be a JSON
    /// object whose `type` is one a client may send.
    public static func parseClientEvents(
        _ text: String, maximumEventBytes: Int = SessionLog.defaultMaximumEventBytes
    ) throws(SessionLogError) -> [NewEvent] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch {
            throw .invalidInput(
                field: "body", message: "the body is \(error)", fix: "send {\"events\": [{\"type\": \"user.message\", \"content\": [...]}]}")
        }
        let list: [JSONValue]
        switch value {
        case .array(let items): list = items
        case .object(let object):
            guard case .array(let items)? = object["events"] else {
                throw .invalidInput(field: "events", message: "the field is missing or not an array", fix: "send {\"events\": [ ... ]}")
            }
            list = items
        default:
            throw .invalidInput(field: "body", message: "expected an object with an events array", fix: "send {\"events\": [ ... ]}")
        }
        guard !list.isEmpty else {
            throw .invalidInput(field: "events", message: "the array is empty", fix: "send at least one event")
        }
        let sendable = SessionEventType.allCases.filter(\.isClientSendable).map(\.rawValue).sorted()
        return try list.enumerated().map { (index, item) throws(SessionLogError) -> NewEvent in
            guard case .object(let fields) = item else {
                throw .invalidInput(
                    field: "events[\(index)]", message: "an event must be a JSON object", fix: "send {\"type\": \"user.message\", ...}")
            }
            guard case .string(let type)? = fields["type"] else {
                throw .invalidInput(
                    field: "events[\(index)].type", message: "the field is missing or not a string",
                    fix: "set it to one of \(sendable.joined(separator: ", "))")
            }
            guard let known = SessionEventType(rawValue: type), known.isClientSendable else {
                let why =
                    SessionEventType(rawValue: type) == nil ? "'\(type)' is not an event type" : "'\(type)' is written by Drover, not sent by clients"
                throw .invalidInput(field: "events[\(index)].type", message: why, fix: "use one of \(sendable.joined(separator: ", "))")
            }
            // Field-level validation against the SDK's shapes; what is stored is the client's JSON.
            let incoming: IncomingSessionEvent
            do throws(WireDecodingError) {
                incoming = try IncomingSessionEvent(clientJSON: item, path: "events[\(index)]")
            } catch {
                throw .invalidInput(
                    field: error.path, message: error.message,
                    fix: "send the fields the Managed Agents API defines for \(known.rawValue)"
                )
            }
            let event = NewEvent(incoming.payload, fields: fields)
            guard event.json.utf8.count <= maximumEventBytes else {
                throw .eventTooLarge(index: index, bytes: event.json.utf8.count, limit: maximumEventBytes)
            }
            return event
        }
    }
}

public struct AppendResult: Sendable, Equatable {
    public let firstSeq: Int64
    public let lastSeq: Int64
    public let processedAt: String
    /// True when the client key had been seen: nothing new was written.
    public let duplicate: Bool
    /// What this call wrote, when it wrote (or its own earlier attempt did).
    private let written: (session: SessionID, events: [NewEvent])?

    public init(firstSeq: Int64, lastSeq: Int64, processedAt: String, duplicate: Bool, written: (session: SessionID, events: [NewEvent])? = nil) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.processedAt = processedAt
        self.duplicate = duplicate
        self.written = written
    }

    /// The events as the log stored them (seq, id, processed_at), made from the reply rather
    /// than read back, and only when asked for; empty for a duplicate of another call's append,
    /// whose events may differ.
    public var events: [StoredEvent] {
        guard let written, lastSeq - firstSeq + 1 == Int64(written.events.count) else { return [] }
        return SessionLog.stored(written.events, of: written.session, from: firstSeq, at: processedAt)
    }

    public static func == (lhs: AppendResult, rhs: AppendResult) -> Bool {
        lhs.firstSeq == rhs.firstSeq && lhs.lastSeq == rhs.lastSeq && lhs.processedAt == rhs.processedAt && lhs.duplicate == rhs.duplicate
            && lhs.written?.session == rhs.written?.session && lhs.written?.events == rhs.written?.events
    }
}

/// What the brain needs to resume a session.
public struct SessionSnapshot: Sendable {
    public let session: SessionID
    public let status: String
    public let lastSeq: Int64
    public let epoch: Int64
    public let events: [StoredEvent]
    /// Where the events came from.
    public let source: Source

    public enum Source: String, Sendable {
        case redis, sqlite, both
    }
}

/// What a streaming wake reports once it has handed over every event.
public struct WokenSession: Sendable {
    public let session: SessionID
    public let status: String
    public let lastSeq: Int64
    public let epoch: Int64
    public let source: SessionSnapshot.Source
}

public enum SessionLogError: ActionableError, Equatable {
    case invalidInput(field: String, message: String, fix: String)
    case eventTooLarge(index: Int, bytes: Int, limit: Int)
    /// The fence is older than the session's: another worker took the session over.
    case staleFence(session: String, fence: Int64, current: Int64)
    case sessionNotFound(String)
    case sessionTerminated(String)
    /// The tool use has its result already; a second one is refused (I2).
    case alreadyAnswered(session: String, toolUse: String)
    /// Another turn task is running the session.
    case sessionBusy(session: String, task: String)
    case redis(RedisError)
    case database(String)
    case unexpectedReply(String)

    public var field: String? {
        switch self {
        case .invalidInput(let field, _, _): field
        case .eventTooLarge(let index, _, _): "events[\(index)]"
        default: nil
        }
    }

    public var fix: String? {
        switch self {
        case .invalidInput(_, _, let fix): fix
        case .eventTooLarge: "keep each event under the limit; put large content in a file and refer to it"
        case .sessionTerminated: "create a new session"
        case .alreadyAnswered: "send nothing more for this tool use: its result is in the session's events"
        case .redis(let error): error.fix
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .invalidInput(let field, let message, let fix): "\(field): \(message). Fix: \(fix)"
        case .eventTooLarge(let index, let bytes, let limit):
            "events[\(index)]: the event is \(bytes) bytes, over the limit of \(limit). Fix: \(fix!)"
        case .staleFence(let session, let fence, let current):
            "session \(session): fence epoch \(fence) is stale (current \(current)); another worker owns the session"
        case .sessionNotFound(let id): "session \(id) does not exist"
        case .sessionBusy(let id, let task): "session \(id) is running a turn for task \(task)"
        case .sessionTerminated(let id): "session \(id) is terminated and accepts no events. Fix: \(fix!)"
        case .alreadyAnswered(let id, let use): "tool use \(use) of session \(id) was already answered. Fix: \(fix!)"
        case .redis(let error): error.description
        case .database(let message): "SQLite: \(message)"
        case .unexpectedReply(let text): "unexpected reply from a session-log script: \(text)"
        }
    }
}

extension SessionLogError: CarriesRedisError {
    public var redisError: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
