import DroverRedis

/// The session log's Lua scripts. A session's keys and its mirror shard's stream share one hash
/// tag, so each script touches a single Redis Cluster slot.
///
/// `meta` holds `seq` (the last sequence number), `epoch` (the fence), `status`,
/// `trimmed_through` (events up to here were trimmed from Redis and live only in SQLite) and
/// `last_at`. A session with no `meta` is *cold*: it must be created, or restored from SQLite.
enum SessionLogScripts {
    private static let preamble =
        RedisScript.clockFunctions + #"""
            local function event_id(sid, seq) return 'sevt_' .. sid .. '_' .. string.format('%06d', seq) end

            """#

    private static func script(_ name: String, idempotent: Bool, _ body: String) -> RedisScript {
        RedisScript(name: name, idempotent: idempotent, source: preamble + body)
    }

    /// KEYS: meta   ARGV: agentJSON environmentJSON ('' for none)   Returns {1} created, {0} existed.
    /// A created meta always has `environment`, '' for none; a restored one has none, and its
    /// readers go to SQLite.
    static let create = script(
        "session_create", idempotent: true,
        #"""
        if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
        local sec = now_parts()
        redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', 0, 'status', 'idle', 'trimmed_through', 0, 'last_at', sec,
          'agent', ARGV[1], 'environment', ARGV[2] or '', 'turn_task', '')
        return {1}
        """#)

    /// Puts back the meta of a session known only to SQLite (its Redis keys were lost or never
    /// there). The epoch is raised past anything SQLite saw, so that no writer from before the
    /// loss can append. KEYS: meta   ARGV: seq epoch status
    static let restore = script(
        "session_restore", idempotent: true,
        #"""
        if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
        local sec = now_parts()
        redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'epoch', ARGV[2], 'status', ARGV[3],
          'trimmed_through', ARGV[1], 'last_at', sec)
        return {1}
        """#)

    /// Takes the fence: every earlier epoch is refused from now on. With a task id, refuses while
    /// another task's turn is running, so that two workers never run one session at once; the
    /// same task claimed again after a crash takes over.
    /// KEYS: meta   ARGV: taskId ('' for none)   Returns {1, epoch}, {0, 'cold'} or {0, 'busy', task}.
    static let takeFence = script(
        "session_take_fence", idempotent: false,
        #"""
        if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'cold'} end
        local f = redis.call('HMGET', KEYS[1], 'status', 'turn_task')
        local task = ARGV[1]
        if task ~= '' and (f[1] == 'running' or f[1] == 'rescheduling') and f[2] and f[2] ~= '' and f[2] ~= task then
          return {0, 'busy', f[2]}
        end
        if task ~= '' then redis.call('HSET', KEYS[1], 'turn_task', task) end
        return {1, redis.call('HINCRBY', KEYS[1], 'epoch', 1)}
        """#)

    /// Lets go of a session taken for `task` whose turn ended while the session stays running (its
    /// calls are with a self-hosted worker), so that the turn their results queue may take it.
    /// KEYS: meta   ARGV: taskId   Returns 1 released, 0 not this task's.
    static let releaseTurn = script(
        "session_release_turn", idempotent: true,
        #"""
        if redis.call('HGET', KEYS[1], 'turn_task') ~= ARGV[1] then return 0 end
        redis.call('HDEL', KEYS[1], 'turn_task')
        return 1
        """#)

    /// KEYS: log meta idem mirror
    /// ARGV: sessionId idPart fence(-1 unfenced) clientKey nonce count, then per event: type json
    /// (a JSON object without id and processed_at, starting with '{').
    /// Returns {'ok', first, last, processed_at} | {'duplicate', first, last, processed_at, nonce} |
    /// {'stale', epoch} | {'cold'} | {'terminated'}.
    ///
    /// Idempotent, so the client may send it again when the connection broke with the outcome
    /// unknown. The nonce is one per call: a record holding the caller's own nonce is its own
    /// earlier attempt. With a client key the record lives 24 h in the idempotency hash; a fenced
    /// append keeps only its last record, in the session's meta, because its writer appends one
    /// call at a time; an unfenced one without a key keys the hash by its nonce.
    static let append = script(
        "session_append", idempotent: true,
        #"""
        local sid, idpart, fence, key, nonce, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
        local meta = redis.call('HMGET', KEYS[2], 'seq', 'epoch', 'status', 'last_append')
        if not meta[1] then return {'cold'} end
        local inMeta = key == '' and fence >= 0
        if key == '' and not inMeta then key = '~' .. nonce end
        local prior
        if inMeta then prior = meta[4] else prior = redis.call('HGET', KEYS[3], key) end
        if prior then
          local a, b, at, n = string.match(prior, '^(%d+):(%d+):([^|]*)|(.*)$')
          if not a then a, b, at = string.match(prior, '^(%d+):(%d+):(.*)$'); n = '' end
          if not inMeta or n == nonce then return {'duplicate', tonumber(a), tonumber(b), at, n} end
        end
        if fence >= 0 and fence ~= tonumber(meta[2]) then return {'stale', tonumber(meta[2])} end
        if meta[3] == 'terminated' then return {'terminated'} end
        -- A tool use takes one result, whoever sends it: a hands worker, a lease expiry, an interrupt.
        local answers = tonumber(ARGV[7 + count * 2] or '0')
        for i = 1, answers do
          local use = ARGV[7 + count * 2 + i]
          if redis.call('HEXISTS', KEYS[2], 'ans:' .. use) == 1 then return {'answered', use} end
        end
        local sec, usec = now_parts()
        local at = iso8601(sec, usec)
        local seq = tonumber(meta[1])
        local first = seq + 1
        local status = meta[3]
        local epoch = meta[2]
        local settled = false
        local interrupted
        for i = 0, count - 1 do
          local etype, body = ARGV[7 + i * 2], ARGV[8 + i * 2]
          seq = seq + 1
          local head = '{"id":"' .. event_id(idpart, seq) .. '","processed_at":"' .. at .. '"'
          local json
          if body == '{}' then json = head .. '}' else json = head .. ',' .. string.sub(body, 2) end
          redis.call('XADD', KEYS[1], seq .. '-0', 't', etype, 'e', json)
          redis.call('XADD', KEYS[4], '*', 's', sid, 'q', seq, 't', etype, 'e', json, 'f', epoch)
          if etype == 'session.status_running' then status = 'running'
          elseif etype == 'session.status_idle' then status = 'idle'; settled = true
          elseif etype == 'session.status_rescheduled' then status = 'rescheduling'
          elseif etype == 'session.status_terminated' then status = 'terminated'; settled = true
          elseif etype == 'user.interrupt' then interrupted = seq end
        end
        for i = 1, answers do
          redis.call('HSET', KEYS[2], 'ans:' .. ARGV[7 + count * 2 + i], first)
        end
        local record = first .. ':' .. seq .. ':' .. at .. '|' .. nonce
        if inMeta then
          redis.call('HSET', KEYS[2], 'seq', seq, 'status', status, 'last_at', sec, 'last_append', record)
        else
          redis.call('HSET', KEYS[2], 'seq', seq, 'status', status, 'last_at', sec)
          redis.call('HSET', KEYS[3], key, record)
          redis.call('EXPIRE', KEYS[3], 86400)
        end
        -- Whoever waits for turns to end hears it here (a hint: pub/sub may drop it).
        if settled then redis.call('PUBLISH', '\#(SessionLog.settledChannel)', sid) end
        -- The turn running the session hears it here, and finds the seq in the meta.
        if interrupted then
          redis.call('HSET', KEYS[2], 'interrupt_seq', interrupted)
          redis.call('PUBLISH', '\#(SessionLog.interruptedChannel)', sid)
        end
        return {'ok', first, seq, at}
        """#)

    /// Drops a quiet session's events from Redis once SQLite holds them all.
    /// KEYS: log meta   ARGV: mirroredSeq idleSeconds   Returns {1} trimmed, {0} not.
    static let trim = script(
        "session_trim", idempotent: true,
        #"""
        local meta = redis.call('HMGET', KEYS[2], 'seq', 'status', 'last_at', 'trimmed_through')
        if not meta[1] then return {0} end
        local seq = tonumber(meta[1])
        if seq ~= tonumber(ARGV[1]) or seq <= tonumber(meta[4] or 0) then return {0} end
        if meta[2] == 'running' or meta[2] == 'rescheduling' then return {0} end
        local sec = now_parts()
        if sec - tonumber(meta[3] or 0) < tonumber(ARGV[2]) then return {0} end
        redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
        redis.call('HSET', KEYS[2], 'trimmed_through', seq)
        return {1}
        """#)
}
