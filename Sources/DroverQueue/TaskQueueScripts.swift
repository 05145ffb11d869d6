import DroverCore
import DroverRedis

/// The queue's Lua scripts. Each operation is one script, so it is atomic; every time comes from
/// Redis' `TIME`, once per call, never from a worker's clock.
///
/// A task is a hash `drover:{q:NAME}:task:ID` whose `state` is one of `ready`, `delayed`,
/// `leased`, `done` or `dead`, and which sits in the matching sorted set. `epoch` goes up by one at
/// every claim, so a lease is the pair (task, epoch): an older lease can never heartbeat, ack or
/// fail once the task was claimed again.
enum TaskQueueScripts {
    private static let preamble =
        RedisScript.clockFunctions + #"""
            -- Higher priority first, then enqueue order. 1000 - priority fits in 10 bits, seq in 40.
            local function ready_score(priority, seq)
              return fmt((1000 - tonumber(priority)) * 1099511627776 + tonumber(seq))
            end
            -- Why a lease is no longer good, or nil if it is.
            local function lease_problem(fields, epoch, now)
              if not fields[1] then return 'gone' end
              if tonumber(fields[2]) ~= epoch then return 'superseded' end
              if fields[1] ~= 'leased' then return 'released' end
              if tonumber(fields[3]) <= now then return 'expired' end
              return nil
            end
            -- One command for many members, however many tasks a call handles: unpack is bounded
            -- by Lua's C stack, so a long list goes in slices.
            local function zadd_all(key, flat)
              for i = 1, #flat, 2000 do redis.call('ZADD', key, unpack(flat, i, math.min(i + 1999, #flat))) end
            end
            local function zrem_all(key, members)
              for i = 1, #members, 1000 do redis.call('ZREM', key, unpack(members, i, math.min(i + 999, #members))) end
            end
            -- Deletes up to `limit` acked tasks that finished before `before`. Acked tasks wait in
            -- the `done` set, as BullMQ's completed set, so that retention costs one command per
            -- call instead of an expiry per task. Only ack puts a task there and nothing moves a
            -- done task on, so every id in it is a done task's.
            local function trim_done(done, prefix, before, limit)
              local old = redis.call('ZRANGEBYSCORE', done, '-inf', fmt(before), 'LIMIT', 0, limit)
              if #old == 0 then return 0 end
              local keys = {}
              for i, id in ipairs(old) do keys[i] = prefix .. id end
              for i = 1, #keys, 1000 do redis.call('DEL', unpack(keys, i, math.min(i + 999, #keys))) end
              zrem_all(done, old)
              return #old
            end

            """#

    private static func script(_ name: String, idempotent: Bool, _ body: String) -> RedisScript {
        RedisScript(name: name, idempotent: idempotent, source: preamble + body)
    }

    /// KEYS: ready delayed meta dedupe marker since
    /// ARGV: taskKeyPrefix id payload priority delayMs dedupeKey maxAttempts maxStalls
    /// `seq` in meta goes up by one per task queued, so it is also the count of tasks queued.
    static let enqueue = script(
        "enqueue", idempotent: true,
        #"""
        local now = now_ms()
        local prefix, id = ARGV[1], ARGV[2]
        local key = prefix .. id
        local existing = redis.call('HGET', key, 'state')
        if existing then return {'exists', id, existing} end
        local dedupe = ARGV[6]
        if dedupe ~= '' then
          local other = redis.call('HGET', KEYS[4], dedupe)
          if other then
            local state = redis.call('HGET', prefix .. other, 'state')
            if state == 'ready' or state == 'delayed' then return {'deduplicated', other, state} end
          end
          redis.call('HSET', KEYS[4], dedupe, id)
        end
        local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
        local delay = tonumber(ARGV[5])
        local state = 'ready'
        if delay > 0 then state = 'delayed' end
        -- Numbers handed to redis.call are formatted with a printf each; constants go as text.
        local now_text = fmt(now)
        redis.call('HSET', key, 'payload', ARGV[3], 'priority', ARGV[4], 'seq', seq, 'state', state,
          'attempts', '0', 'max_attempts', ARGV[7], 'stalls', '0', 'max_stalls', ARGV[8], 'epoch', '0',
          'enqueued_at', now_text, 'dedupe', dedupe, 'release', '')
        if delay > 0 then
          redis.call('ZADD', KEYS[2], fmt(now + delay), id)
        else
          redis.call('ZADD', KEYS[1], ready_score(ARGV[4], seq), id)
          redis.call('ZADD', KEYS[6], now_text, id)
        end
        redis.call('ZADD', KEYS[5], '0', '0')
        return {'enqueued', id, state}
        """#)

    /// KEYS: leased   ARGV: taskKey id epoch leaseMs   Returns {1, deadline} or {0, problem}.
    static let heartbeat = script(
        "heartbeat", idempotent: true,
        #"""
        local now = now_ms()
        local key, id, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local problem = lease_problem(redis.call('HMGET', key, 'state', 'epoch', 'deadline'), epoch, now)
        if problem then return {0, problem} end
        local deadline = now + tonumber(ARGV[4])
        redis.call('HSET', key, 'deadline', fmt(deadline))
        redis.call('ZADD', KEYS[1], 'XX', fmt(deadline), id)
        return {1, deadline}
        """#)

    /// Claims up to `max` ready tasks, first moving due delayed tasks to ready. Returns {now,
    /// hint, id, epoch, deadline, attempt, payload, ...}. When nothing was claimed, hint is the
    /// ms until the next delayed task is due, or -1 for none; -2 when the queue is paused. Per
    /// task it costs two commands (HMGET, HSET); the sorted sets change once per call.
    private static let claimFunction = #"""
        local function claim_tasks(ready, delayed, leased_set, meta, marker, since, dedupe_map, prefix, worker, lease_ms, max, now)
          if redis.call('HGET', meta, 'paused') == '1' then return {now, -2} end
          local first_due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
          if first_due[2] and tonumber(first_due[2]) <= now then
            local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
            local promoted, ready_since, now_text = {}, {}, fmt(now)
            for _, id in ipairs(due) do
              local f = redis.call('HMGET', prefix .. id, 'priority', 'seq')
              if f[1] then
                redis.call('HSET', prefix .. id, 'state', 'ready')
                promoted[#promoted + 1] = ready_score(f[1], f[2])
                promoted[#promoted + 1] = id
                ready_since[#ready_since + 1] = now_text
                ready_since[#ready_since + 1] = id
              end
            end
            zrem_all(delayed, due)
            zadd_all(ready, promoted)
            zadd_all(since, ready_since)
            first_due = nil
          end
          local out = {now, -1}
          local deadline = now + lease_ms
          -- Formatting a number costs a printf; once per call, not per task.
          local deadline_text = fmt(deadline)
          local popped = redis.call('ZPOPMIN', ready, max)
          local leased, claimed = {}, {}
          for i = 1, #popped, 2 do
            local id = popped[i]
            local key = prefix .. id
            claimed[#claimed + 1] = id
            local f = redis.call('HMGET', key, 'payload', 'epoch', 'attempts', 'dedupe')
            if f[1] then
              local epoch = tonumber(f[2] or 0) + 1
              local attempt = tonumber(f[3] or 0) + 1
              redis.call('HSET', key, 'state', 'leased', 'owner', worker, 'deadline', deadline_text, 'release', '',
                'epoch', epoch, 'attempts', attempt)
              if f[4] and f[4] ~= '' and redis.call('HGET', dedupe_map, f[4]) == id then redis.call('HDEL', dedupe_map, f[4]) end
              leased[#leased + 1] = deadline_text
              leased[#leased + 1] = id
              out[#out + 1] = id
              out[#out + 1] = epoch
              out[#out + 1] = deadline
              out[#out + 1] = attempt
              out[#out + 1] = f[1]
            end
          end
          zrem_all(since, claimed)
          zadd_all(leased_set, leased)
          -- A full claim may have left tasks behind: wake the next waiting consumer. An empty one
          -- reports when the next delayed task is due, so the consumer waits no longer than that.
          if #popped == 2 * max then redis.call('ZADD', marker, '0', '0') end
          if #out == 2 then
            first_due = first_due or redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
            if first_due[2] then out[2] = math.max(0, tonumber(first_due[2]) - now) end
          end
          return out
        end

        """#

    /// Acks the leases given in ARGV from index `first` on as pairs (id, epoch), and returns one
    /// verdict per lease: 'ok' (acked now, or by an earlier call under the same epoch: a retried
    /// ack) or the problem with the lease. An acked task stays readable for `retention` ms in the
    /// done set (0: deleted at once), then a later ack or sweep deletes it.
    private static let ackFunction = #"""
        local function ack_leases(leased_set, meta, done, prefix, retention, now, first)
          local now_text = fmt(now)
          local out, removed, finished = {}, {}, {}
          for i = first, #ARGV - 1, 2 do
            local id, epoch = ARGV[i], tonumber(ARGV[i + 1])
            local key = prefix .. id
            local f = redis.call('HMGET', key, 'state', 'epoch', 'deadline', 'release')
            local verdict = 'ok'
            if not (f[1] == 'done' and tonumber(f[2]) == epoch and f[4] == 'ack') then
              verdict = lease_problem(f, epoch, now) or 'ok'
              if verdict == 'ok' then
                removed[#removed + 1] = id
                if retention > 0 then
                  redis.call('HSET', key, 'state', 'done', 'release', 'ack', 'finished_at', now_text)
                  finished[#finished + 1] = now_text
                  finished[#finished + 1] = id
                else
                  redis.call('DEL', key)
                end
              end
            end
            out[#out + 1] = verdict
          end
          if #removed > 0 then
            zrem_all(leased_set, removed)
            zadd_all(done, finished)
            redis.call('HINCRBY', meta, 'acked', #removed)
          end
          -- Twice what this call added, so the set shrinks whenever acks outpace retention.
          if retention > 0 then trim_done(done, prefix, now - retention, 2 * #finished + 16) end
          return out
        end

        """#

    /// KEYS: ready delayed leased meta marker since dedupe
    /// ARGV: taskKeyPrefix workerId leaseMs max   Returns what `claim_tasks` returns.
    static let claim = script(
        "claim", idempotent: false,
        claimFunction + #"""
            return claim_tasks(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
              ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms())
            """#)

    /// Acks any number of leases of one queue in one call.
    /// KEYS: leased meta done   ARGV: taskKeyPrefix retentionMs id epoch id epoch ...
    /// Returns one verdict per lease.
    static let ack = script(
        "ack", idempotent: true,
        ackFunction + #"""
            return ack_leases(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), now_ms(), 3)
            """#)

    /// A worker's finished leases acked and its next tasks claimed, in one round trip.
    /// KEYS: ready delayed leased meta marker since dedupe done
    /// ARGV: taskKeyPrefix workerId leaseMs max retentionMs id epoch id epoch ...
    /// Returns {now, hint, verdictCount, verdict..., id, epoch, deadline, attempt, payload, ...}.
    static let ackAndClaim = script(
        "ack_claim", idempotent: false,
        ackFunction + claimFunction + #"""
            local now = now_ms()
            local verdicts = ack_leases(KEYS[3], KEYS[4], KEYS[8], ARGV[1], tonumber(ARGV[5]), now, 6)
            local claimed = claim_tasks(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
              ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now)
            local out = {claimed[1], claimed[2], #verdicts}
            for _, verdict in ipairs(verdicts) do out[#out + 1] = verdict end
            for i = 3, #claimed do out[#out + 1] = claimed[i] end
            return out
            """#)

    /// KEYS: leased delayed dead meta marker
    /// ARGV: taskKey id epoch error retryable(0|1) backoffMs
    /// Returns {1, 'retry'|'dead', at} or {0, problem}.
    static let fail = script(
        "fail", idempotent: true,
        #"""
        local now = now_ms()
        local key, id, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local f = redis.call('HMGET', key, 'state', 'epoch', 'deadline', 'release', 'outcome', 'outcome_at')
        if f[4] == 'fail' and tonumber(f[2]) == epoch then return {1, f[5], tonumber(f[6])} end
        local problem = lease_problem(f, epoch, now)
        if problem then return {0, problem} end
        redis.call('ZREM', KEYS[1], id)
        local counts = redis.call('HMGET', key, 'attempts', 'max_attempts')
        if ARGV[5] == '1' and tonumber(counts[1]) < tonumber(counts[2]) then
          local due = now + tonumber(ARGV[6])
          redis.call('HSET', key, 'state', 'delayed', 'owner', '', 'last_error', ARGV[4],
            'release', 'fail', 'outcome', 'retry', 'outcome_at', fmt(due))
          redis.call('ZADD', KEYS[2], fmt(due), id)
          redis.call('ZADD', KEYS[5], 0, '0')
          redis.call('HINCRBY', KEYS[4], 'retried', 1)
          return {1, 'retry', due}
        end
        redis.call('HSET', key, 'state', 'dead', 'owner', '', 'last_error', ARGV[4],
          'release', 'fail', 'outcome', 'dead', 'outcome_at', fmt(now))
        redis.call('ZADD', KEYS[3], fmt(now), id)
        redis.call('HINCRBY', KEYS[4], 'dead', 1)
        return {1, 'dead', now}
        """#)

    /// Gives a lease back without spending an attempt: for a worker draining on shutdown, or a
    /// task that cannot run yet. KEYS: leased delayed ready meta marker since
    /// ARGV: taskKey id epoch delayMs   Returns {1} or {0, problem}.
    static let release = script(
        "release", idempotent: true,
        #"""
        local now = now_ms()
        local key, id, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local f = redis.call('HMGET', key, 'state', 'epoch', 'deadline', 'release', 'priority', 'seq', 'enqueued_at')
        if f[4] == 'release' and tonumber(f[2]) == epoch then return {1} end
        local problem = lease_problem(f, epoch, now)
        if problem then return {0, problem} end
        redis.call('ZREM', KEYS[1], id)
        redis.call('HINCRBY', key, 'attempts', -1)
        local delay = tonumber(ARGV[4])
        if delay > 0 then
          redis.call('HSET', key, 'state', 'delayed', 'owner', '', 'release', 'release')
          redis.call('ZADD', KEYS[2], fmt(now + delay), id)
        else
          redis.call('HSET', key, 'state', 'ready', 'owner', '', 'release', 'release')
          redis.call('ZADD', KEYS[3], ready_score(f[5], f[6]), id)
          redis.call('ZADD', KEYS[6], f[7], id)
        end
        redis.call('ZADD', KEYS[5], 0, '0')
        redis.call('HINCRBY', KEYS[4], 'released', 1)
        return {1}
        """#)

    /// Hands back every lease whose owner does not start with ARGV[2], as `release` would (no
    /// attempt spent, no stall counted): for a caller that knows those owners are gone, such as
    /// a batch run that holds its batch's lock and finds the leases of the run that died.
    /// KEYS: leased ready meta marker since   ARGV: taskKeyPrefix keepOwnerPrefix   Returns the count.
    static let reclaim = script(
        "reclaim", idempotent: true,
        #"""
        local prefix, keep = ARGV[1], ARGV[2]
        local reclaimed = 0
        for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local key = prefix .. id
          local f = redis.call('HMGET', key, 'state', 'owner', 'priority', 'seq', 'enqueued_at')
          if f[1] == 'leased' and string.sub(f[2] or '', 1, #keep) ~= keep then
            redis.call('ZREM', KEYS[1], id)
            redis.call('HINCRBY', key, 'attempts', -1)
            redis.call('HSET', key, 'state', 'ready', 'owner', '', 'release', 'reclaimed')
            redis.call('ZADD', KEYS[2], ready_score(f[3], f[4]), id)
            redis.call('ZADD', KEYS[5], f[5], id)
            reclaimed = reclaimed + 1
          end
        end
        if reclaimed > 0 then
          redis.call('ZADD', KEYS[4], 0, '0')
          redis.call('HINCRBY', KEYS[3], 'released', reclaimed)
        end
        return reclaimed
        """#)

    /// Deletes the queue's waiting tasks (ready, delayed and dead), and with ARGV[2] = '1' its
    /// leased ones too; their dedupe entries go with them. Counts and the pause flag stay.
    /// KEYS: ready delayed dead leased since dedupe   ARGV: taskKeyPrefix includeLeased
    /// Returns {ready, delayed, dead, leased} removed.
    static let purge = script(
        "purge", idempotent: true,
        #"""
        local prefix = ARGV[1]
        local function drop(set)
          local ids = redis.call('ZRANGE', set, 0, -1)
          for _, id in ipairs(ids) do
            local key = prefix .. id
            local dedupe = redis.call('HGET', key, 'dedupe')
            if dedupe and dedupe ~= '' and redis.call('HGET', KEYS[6], dedupe) == id then redis.call('HDEL', KEYS[6], dedupe) end
            redis.call('DEL', key)
            redis.call('ZREM', KEYS[5], id)
          end
          redis.call('DEL', set)
          return #ids
        end
        local leased = 0
        if ARGV[2] == '1' then leased = drop(KEYS[4]) end
        return {drop(KEYS[1]), drop(KEYS[2]), drop(KEYS[3]), leased}
        """#)

    /// KEYS: leased ready dead meta marker since lock done
    /// ARGV: taskKeyPrefix intervalMs token limit retentionMs
    /// Returns {ran(0|1), requeued, dead}. Also deletes acked tasks past their retention, so a
    /// queue that stopped acking frees them too.
    static let sweep = script(
        "sweep", idempotent: true,
        #"""
        local now = now_ms()
        local prefix = ARGV[1]
        if tonumber(ARGV[2]) > 0 then
          if not redis.call('SET', KEYS[7], ARGV[3], 'NX', 'PX', ARGV[2]) then return {0, 0, 0} end
        end
        local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
        local requeued, dead = 0, 0
        for _, id in ipairs(expired) do
          local key = prefix .. id
          redis.call('ZREM', KEYS[1], id)
          local f = redis.call('HMGET', key, 'state', 'max_stalls', 'priority', 'seq', 'enqueued_at', 'owner')
          if f[1] == 'leased' then
            local stalls = redis.call('HINCRBY', key, 'stalls', 1)
            redis.call('HINCRBY', KEYS[4], 'stalled', 1)
            if stalls > tonumber(f[2]) then
              redis.call('HSET', key, 'state', 'dead', 'owner', '', 'release', 'expired', 'outcome', 'dead',
                'outcome_at', fmt(now),
                'last_error', 'lease expired ' .. stalls .. ' times (last held by ' .. f[6] .. '); the worker died or stalled')
              redis.call('ZADD', KEYS[3], fmt(now), id)
              redis.call('HINCRBY', KEYS[4], 'dead', 1)
              dead = dead + 1
            else
              redis.call('HSET', key, 'state', 'ready', 'owner', '', 'release', 'expired')
              redis.call('ZADD', KEYS[2], ready_score(f[3], f[4]), id)
              redis.call('ZADD', KEYS[6], f[5], id)
              requeued = requeued + 1
            end
          end
        end
        if requeued > 0 then redis.call('ZADD', KEYS[5], 0, '0') end
        local retention = tonumber(ARGV[5])
        if retention > 0 then trim_done(KEYS[8], prefix, now - retention, tonumber(ARGV[4])) end
        return {1, requeued, dead}
        """#)

    /// KEYS: ready delayed leased dead meta since   Returns counts, then the oldest ready age in ms.
    static let stats = script(
        "stats", idempotent: true,
        #"""
        local now = now_ms()
        local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
        local age = -1
        if oldest[2] then age = now - tonumber(oldest[2]) end
        local m = redis.call('HMGET', KEYS[5], 'paused', 'seq', 'acked', 'retried', 'dead', 'stalled')
        return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
          redis.call('ZCARD', KEYS[4]), age, m[1] == '1' and 1 or 0,
          tonumber(m[2] or 0), tonumber(m[3] or 0), tonumber(m[4] or 0), tonumber(m[5] or 0), tonumber(m[6] or 0)}
        """#)

    /// KEYS: dead   ARGV: taskKeyPrefix count   Newest first: {id, diedAt, attempts, error, payload, ...}.
    static let peekDead = script(
        "peek_dead", idempotent: true,
        #"""
        local prefix = ARGV[1]
        local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
        local out = {}
        for i = 1, #ids, 2 do
          local f = redis.call('HMGET', prefix .. ids[i], 'attempts', 'last_error', 'payload')
          table.insert(out, ids[i])
          table.insert(out, tonumber(ids[i + 1]))
          table.insert(out, tonumber(f[1] or 0))
          table.insert(out, f[2] or '')
          table.insert(out, f[3] or '')
        end
        return out
        """#)

    /// KEYS: dead ready meta marker since   ARGV: taskKey id   Returns {1} or {0, state}.
    static let requeue = script(
        "requeue", idempotent: true,
        #"""
        local now = now_ms()
        local key, id = ARGV[1], ARGV[2]
        local f = redis.call('HMGET', key, 'state', 'priority', 'seq')
        if f[1] ~= 'dead' then return {0, f[1] or 'gone'} end
        redis.call('ZREM', KEYS[1], id)
        redis.call('HSET', key, 'state', 'ready', 'attempts', 0, 'stalls', 0, 'release', '', 'outcome', '', 'owner', '')
        redis.call('ZADD', KEYS[2], ready_score(f[2], f[3]), id)
        redis.call('ZADD', KEYS[5], fmt(now), id)
        redis.call('ZADD', KEYS[4], 0, '0')
        redis.call('HINCRBY', KEYS[3], 'requeued', 1)
        return {1}
        """#)

    /// KEYS: meta marker   ARGV: 1 to pause, 0 to resume
    static let setPaused = script(
        "set_paused", idempotent: true,
        #"""
        redis.call('HSET', KEYS[1], 'paused', ARGV[1])
        if ARGV[1] == '0' then redis.call('ZADD', KEYS[2], 0, '0') end
        return 1
        """#)
}
