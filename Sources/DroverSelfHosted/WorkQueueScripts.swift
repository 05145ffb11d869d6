import DroverRedis

/// The Lua scripts of a self-hosted environment's work queue. Every key of one environment
/// carries the hash tag `{w:ENV}`, so each script touches one Redis Cluster slot, and every time
/// comes from Redis' `TIME`, never from a host's clock.
///
/// An item is a hash `drover:{w:ENV}:item:ID`. Its `state` is the SDK's (`queued`, `starting`,
/// `active`, `stopping`, `stopped`) or Drover's own `lapsed`: its lease ran out while a worker
/// held it, and the error results of the calls that worker was running are being written before
/// anyone else may claim it. The sorted sets hold what waits (`queued`, by creation), what is
/// held (`leased`, by deadline), what lapsed (`lapsed`) and every item (`items`, for listing).
/// `live` maps a session to its item that is not stopped, so a session has at most one.
enum WorkQueueScripts {
    private static let preamble =
        RedisScript.clockFunctions + #"""
            -- Puts an item back in line at its first place, as nobody's.
            local function requeue(p, id, key)
              redis.call('HSET', key, 'state', 'queued', 'worker', '', 'last_heartbeat', '', 'deadline', 0)
              redis.call('HINCRBY', key, 'reclaims', 1)
              redis.call('ZREM', p .. 'leased', id)
              redis.call('ZREM', p .. 'lapsed', id)
              redis.call('ZADD', p .. 'queued', redis.call('HGET', key, 'created_ms'), id)
              redis.call('ZADD', p .. 'marker', 0, 'm')
            end
            local function stop_now(p, id, key, at)
              local f = redis.call('HMGET', key, 'session', 'stop_requested_at')
              redis.call('HSET', key, 'state', 'stopped', 'stopped_at', at, 'deadline', 0)
              if not f[2] or f[2] == '' then redis.call('HSET', key, 'stop_requested_at', at) end
              redis.call('ZREM', p .. 'queued', id)
              redis.call('ZREM', p .. 'leased', id)
              redis.call('ZREM', p .. 'lapsed', id)
              if redis.call('HGET', p .. 'live', f[1]) == id then redis.call('HDEL', p .. 'live', f[1]) end
            end
            -- A stop that lets a running worker finish: it reads `stopping` at its next heartbeat.
            local function request_stop(p, id, key, force, at)
              local state = redis.call('HGET', key, 'state')
              if not state then return {'gone'} end
              if state == 'stopped' then return {'conflict', state} end
              if state == 'lapsed' then
                redis.call('HSET', key, 'stop', '1')
                if force then stop_now(p, id, key, at); return {'ok', 'stopped'} end
                return {'ok', state}
              end
              if force or state == 'queued' or state == 'starting' then
                stop_now(p, id, key, at)
                return {'ok', 'stopped'}
              end
              if state == 'active' then
                redis.call('HSET', key, 'state', 'stopping', 'stop_requested_at', at)
                local session = redis.call('HGET', key, 'session')
                if redis.call('HGET', p .. 'live', session) == id then redis.call('HDEL', p .. 'live', session) end
              end
              return {'ok', 'stopping'}
            end

            """#

    private static func script(_ name: String, idempotent: Bool, _ body: String) -> RedisScript {
        RedisScript(name: name, idempotent: idempotent, source: preamble + body)
    }

    /// The session's live item, or a new queued one.
    /// KEYS: live   ARGV: prefix session newId environment
    /// Returns {1, id} created, {0, id} existed.
    static let ensure = script(
        "work_ensure", idempotent: true,
        #"""
        local p, session, id, env = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
        local live = redis.call('HGET', KEYS[1], session)
        if live then
          local state = redis.call('HGET', p .. 'item:' .. live, 'state')
          if state == 'queued' or state == 'starting' or state == 'active' or state == 'lapsed' then return {0, live} end
        end
        local sec, usec = now_parts()
        local ms = sec * 1000 + math.floor(usec / 1000)
        local key = p .. 'item:' .. id
        redis.call('HSET', key, 'id', id, 'environment', env, 'session', session, 'state', 'queued',
          'created_at', iso8601(sec, usec), 'created_ms', ms, 'epoch', 0, 'metadata', '{}', 'reclaims', 0,
          'last_heartbeat', '', 'deadline', 0)
        redis.call('ZADD', p .. 'queued', ms, id)
        redis.call('ZADD', p .. 'items', ms, id)
        redis.call('HSET', KEYS[1], session, id)
        redis.call('ZADD', p .. 'marker', 0, 'm')
        -- Keep the history bounded: the oldest stopped items go once there are many.
        if redis.call('ZCARD', p .. 'items') > 2000 then
          for _, old in ipairs(redis.call('ZRANGE', p .. 'items', 0, 19)) do
            local okey = p .. 'item:' .. old
            local state = redis.call('HGET', okey, 'state')
            if not state or state == 'stopped' then
              redis.call('DEL', okey)
              redis.call('ZREM', p .. 'items', old)
            end
          end
        end
        return {1, id}
        """#)

    /// Claims the oldest queued item for `worker`, for `ttl` ms until it is acknowledged. Items
    /// polled and never acknowledged go back in line first.
    /// KEYS: queued   ARGV: prefix worker ttlMs   Returns the item's fields, or {}.
    static let poll = script(
        "work_poll", idempotent: false,
        #"""
        local p, worker, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local ms = now_ms()
        if worker ~= '' then
          redis.call('ZADD', p .. 'pollers', ms, worker)
          redis.call('ZREMRANGEBYSCORE', p .. 'pollers', '-inf', ms - 60000)
        end
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leased', '-inf', ms, 'LIMIT', 0, 20)) do
          local key = p .. 'item:' .. id
          if redis.call('HGET', key, 'state') == 'starting' then requeue(p, id, key) end
        end
        local ids = redis.call('ZRANGE', KEYS[1], 0, 0)
        if #ids == 0 then return {} end
        local id = ids[1]
        local key = p .. 'item:' .. id
        redis.call('ZREM', KEYS[1], id)
        redis.call('HINCRBY', key, 'epoch', 1)
        redis.call('HSET', key, 'state', 'starting', 'worker', worker, 'deadline', fmt(ms + ttl), 'last_heartbeat', '')
        redis.call('ZADD', p .. 'leased', fmt(ms + ttl), id)
        return redis.call('HGETALL', key)
        """#)

    /// KEYS: item   ARGV: prefix id ttlMs   Returns {'ok', state} | {'conflict', state} | {'gone'}.
    static let ack = script(
        "work_ack", idempotent: true,
        #"""
        local p, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local state = redis.call('HGET', KEYS[1], 'state')
        if not state then return {'gone'} end
        if state == 'active' or state == 'stopping' then return {'ok', state} end
        if state ~= 'starting' then return {'conflict', state} end
        local sec, usec = now_parts()
        local ms = sec * 1000 + math.floor(usec / 1000)
        local at = iso8601(sec, usec)
        redis.call('HSET', KEYS[1], 'state', 'active', 'acknowledged_at', at, 'started_at', at, 'deadline', fmt(ms + ttl))
        redis.call('ZADD', p .. 'leased', fmt(ms + ttl), id)
        return {'ok', 'active'}
        """#)

    /// Extends the lease when `expected` is the heartbeat the server holds (`NO_HEARTBEAT` for
    /// none). A lease whose deadline has passed is lost, whatever the worker sends: the sweeper
    /// owns it from then on.
    /// KEYS: item   ARGV: prefix id expected ('' = not compared) ttlMs
    /// Returns {'ok', state, last_heartbeat, extended, ttlMs} | {'precondition', state, last_heartbeat, ttlMs} | {'gone'}.
    static let heartbeat = script(
        "work_heartbeat", idempotent: false,
        #"""
        local p, id, expected, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
        local f = redis.call('HMGET', KEYS[1], 'state', 'last_heartbeat', 'deadline', 'lease_ms')
        local state, last = f[1], f[2] or ''
        if not state then return {'gone'} end
        local held = tonumber(f[4] or ttl)
        if state == 'stopping' or state == 'stopped' then return {'ok', state, last, 0, held} end
        local sec, usec = now_parts()
        local ms = sec * 1000 + math.floor(usec / 1000)
        if state ~= 'starting' and state ~= 'active' then return {'precondition', state, last, held} end
        if tonumber(f[3]) <= ms then return {'precondition', state, last, held} end
        local stored = last
        if stored == '' then stored = 'NO_HEARTBEAT' end
        if expected ~= '' and expected ~= stored then return {'precondition', state, last, held} end
        local at = iso8601(sec, usec)
        if at == last then at = iso8601(sec, usec + 1) end
        redis.call('HSET', KEYS[1], 'last_heartbeat', at, 'deadline', fmt(ms + ttl), 'lease_ms', ttl)
        redis.call('ZADD', p .. 'leased', fmt(ms + ttl), id)
        return {'ok', state, at, 1, ttl}
        """#)

    /// KEYS: item   ARGV: prefix id force(0|1)   Returns {'ok', state} | {'conflict', state} | {'gone'}.
    static let stop = script(
        "work_stop", idempotent: true,
        #"""
        local sec, usec = now_parts()
        return request_stop(ARGV[1], ARGV[2], KEYS[1], ARGV[3] == '1', iso8601(sec, usec))
        """#)

    /// Stops the session's live item gracefully (an interrupt, a termination).
    /// KEYS: live   ARGV: prefix session   Returns {'ok', state, id} | {'none'}.
    static let stopSession = script(
        "work_stop_session", idempotent: true,
        #"""
        local p, session = ARGV[1], ARGV[2]
        local id = redis.call('HGET', KEYS[1], session)
        if not id then return {'none'} end
        local sec, usec = now_parts()
        local reply = request_stop(p, id, p .. 'item:' .. id, false, iso8601(sec, usec))
        if reply[1] ~= 'ok' then return {'none'} end
        return {'ok', reply[2], id}
        """#)

    /// Moves leases whose deadline passed: a polled item never acknowledged goes back in line; an
    /// acknowledged one lapses. Returns every lapsed item as {id, session, ...}, up to `limit`.
    /// KEYS: leased   ARGV: prefix limit
    static let lapse = script(
        "work_lapse", idempotent: true,
        #"""
        local p, limit = ARGV[1], tonumber(ARGV[2])
        local ms = now_ms()
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, limit)) do
          local key = p .. 'item:' .. id
          local state = redis.call('HGET', key, 'state')
          if state == 'starting' then
            requeue(p, id, key)
          elseif state == 'active' or state == 'stopping' then
            if state == 'stopping' then redis.call('HSET', key, 'stop', '1') end
            redis.call('HSET', key, 'state', 'lapsed', 'deadline', 0)
            redis.call('ZREM', KEYS[1], id)
            redis.call('ZADD', p .. 'lapsed', ms, id)
          else
            redis.call('ZREM', KEYS[1], id)
          end
        end
        local out = {}
        for _, id in ipairs(redis.call('ZRANGE', p .. 'lapsed', 0, limit - 1)) do
          out[#out + 1] = id
          out[#out + 1] = redis.call('HGET', p .. 'item:' .. id, 'session') or ''
        end
        return out
        """#)

    /// After a lapsed item's open calls got their error results: back in line, or stopped if a
    /// stop was asked for. KEYS: item   ARGV: prefix id   Returns the new state.
    static let settle = script(
        "work_settle", idempotent: true,
        #"""
        local p, id = ARGV[1], ARGV[2]
        local f = redis.call('HMGET', KEYS[1], 'state', 'stop')
        if f[1] ~= 'lapsed' then
          redis.call('ZREM', p .. 'lapsed', id)
          return f[1] or 'gone'
        end
        if f[2] == '1' then
          local sec, usec = now_parts()
          stop_now(p, id, KEYS[1], iso8601(sec, usec))
          return 'stopped'
        end
        requeue(p, id, KEYS[1])
        return 'queued'
        """#)

    /// Sets metadata keys to strings, or deletes them (JSON null).
    /// KEYS: item   ARGV: patchJSON   Returns {'ok'} | {'gone'}.
    static let updateMetadata = script(
        "work_update_metadata", idempotent: true,
        #"""
        local current = redis.call('HGET', KEYS[1], 'metadata')
        if not current then return {'gone'} end
        local merged = cjson.decode(current)
        for k, v in pairs(cjson.decode(ARGV[1])) do
          if v == cjson.null then merged[k] = nil else merged[k] = v end
        end
        if next(merged) == nil then redis.call('HSET', KEYS[1], 'metadata', '{}')
        else redis.call('HSET', KEYS[1], 'metadata', cjson.encode(merged)) end
        return {'ok'}
        """#)

    /// KEYS: queued   ARGV: prefix
    /// Returns {depth, pending, oldestQueuedAt or '', workersPolling}.
    static let stats = script(
        "work_stats", idempotent: true,
        #"""
        local p = ARGV[1]
        local ms = now_ms()
        local depth = redis.call('ZCARD', KEYS[1])
        local pending = 0
        local oldest, oldestMs = '', nil
        for _, id in ipairs(redis.call('ZRANGE', p .. 'leased', 0, 999)) do
          local f = redis.call('HMGET', p .. 'item:' .. id, 'state', 'created_at', 'created_ms')
          if f[1] == 'starting' then
            pending = pending + 1
            if not oldestMs or tonumber(f[3]) < oldestMs then oldest, oldestMs = f[2], tonumber(f[3]) end
          end
        end
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        if #first > 0 and (not oldestMs or tonumber(first[2]) < oldestMs) then
          oldest = redis.call('HGET', p .. 'item:' .. first[1], 'created_at') or ''
        end
        local polling = redis.call('ZCOUNT', p .. 'pollers', ms - 30000, '+inf')
        return {depth, pending, oldest, polling}
        """#)
}
