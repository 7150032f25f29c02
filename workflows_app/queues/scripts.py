"""The Lua scripts of the hot path, each one round trip per batch whatever its size, and how they
are called (with the writes a handler asks to land before its acknowledgement).

- ``SEND_MANY``: a batch of messages onto one stream: deduplication (``GET`` / ``SET EX``),
  capacity (one ``XLEN``), ``XADD``, the FIFO group list, one ``XTRIM MINID`` for the batch.
- ``CYCLE``: acknowledge a batch (``XACK``, then ``XDEL`` and the bookkeeping of those that were
  pending, rate counters, their place in their FIFO lists), then receive the next one: reclaim
  messages idle for the visibility timeout (``XPENDING IDLE`` + ``XCLAIM``), ``XREADGROUP COUNT``,
  count each delivery (``HINCRBY``) and report each message's position in its group's list
  (``LPOS``, for FIFO gating). With nothing to acknowledge it is a receive; with count 0 an ack.

The scripts build a queue's group-list keys from a prefix (every key of a queue shares
``nexus:q:<name>:``): Nexus runs on one Redis, not a cluster.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

# KEYS: stream, then per item: dedup key ('' = none), group list key ('' = none)
# ARGV: max_messages (0 = no cap), dedup window (s), retention cutoff id ('' = none), then per item:
#       body, group, dedup id
# -> per item: status (1 added, 0 duplicate, -1 full), stream id (of the first copy for a duplicate)
SEND_MANY = """
local stream, cap = KEYS[1], tonumber(ARGV[1])
local length = 0
if cap > 0 then length = redis.call('XLEN', stream) end
local out = {}
for i = 0, (#ARGV - 3) / 3 - 1 do
  local dkey, lkey = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local prev = false
  if dkey ~= '' then prev = redis.call('GET', dkey) end
  if prev then
    out[#out + 1] = 0; out[#out + 1] = prev
  elseif cap > 0 and length >= cap then
    out[#out + 1] = -1; out[#out + 1] = ''
  else
    local id = redis.call('XADD', stream, '*', 'body', ARGV[4 + 3 * i], 'group', ARGV[5 + 3 * i],
                          'dedup', ARGV[6 + 3 * i])
    length = length + 1
    if dkey ~= '' then redis.call('SET', dkey, id, 'EX', tonumber(ARGV[2])) end
    if lkey ~= '' then redis.call('RPUSH', lkey, id) end
    out[#out + 1] = 1; out[#out + 1] = id
  end
end
if ARGV[3] ~= '' then redis.call('XTRIM', stream, 'MINID', '~', ARGV[3]) end
return out
"""

# KEYS: stream, deliveries hash, errors hash, redrives hash, rate bucket, processed counter
# ARGV: group, consumer, count to receive (0 = none), idle ms, group-list key prefix ('' = not FIFO),
#       rate bucket ttl, counted ('1' = towards processing_rate), positions of the received ('1' / '0'),
#       number of messages to ack, then per message to ack: id, group; then per message whose
#       FIFO position is wanted (a batch received earlier, about to run): id, group
# -> acked, number of positions, the positions (-1 = not listed), then per received message: id,
#    fields (flat list), deliveries, FIFO position (-1 = none or not asked)
CYCLE = """
local stream, group, prefix = KEYS[1], ARGV[1], ARGV[5]
local acks_end = 10 + 2 * tonumber(ARGV[9])  -- the first ARGV after the acks
local done = {}
for i = 10, acks_end - 1, 2 do
  local id = ARGV[i]
  if redis.call('XACK', stream, group, id) == 1 then done[#done + 1] = id end
  if prefix ~= '' and ARGV[i + 1] ~= '' then redis.call('LREM', prefix .. ARGV[i + 1], 1, id) end
end
if #done > 0 then
  redis.call('XDEL', stream, unpack(done))
  redis.call('HDEL', KEYS[2], unpack(done))
  redis.call('HDEL', KEYS[3], unpack(done))
  redis.call('HDEL', KEYS[4], unpack(done))
  if ARGV[7] == '1' then
    redis.call('INCRBY', KEYS[5], #done)
    redis.call('EXPIRE', KEYS[5], ARGV[6])
    redis.call('INCRBY', KEYS[6], #done)
  end
end
local function position(id, grp)
  if prefix == '' or grp == '' then return -1 end
  return redis.call('LPOS', prefix .. grp, id) or -1
end
local out = {#done, (#ARGV - acks_end + 1) / 2}
for i = acks_end, #ARGV - 1, 2 do out[#out + 1] = position(ARGV[i], ARGV[i + 1]) end
local count = tonumber(ARGV[3])
if count <= 0 then return out end
local entries = {}
local idle = ARGV[4]
local pending = redis.call('XPENDING', stream, group, 'IDLE', idle, '-', '+', count)
if #pending > 0 then
  local ids = {}
  for i, p in ipairs(pending) do ids[i] = p[1] end
  local got = {}
  for _, e in ipairs(redis.call('XCLAIM', stream, group, ARGV[2], idle, unpack(ids))) do
    if type(e) == 'table' and e[2] then got[e[1]] = true; entries[#entries + 1] = e end
  end
  local gone = {}
  for _, id in ipairs(ids) do  -- trimmed away (retention) while pending: forget them
    if not got[id] and #redis.call('XRANGE', stream, id, id) == 0 then gone[#gone + 1] = id end
  end
  if #gone > 0 then
    redis.call('XACK', stream, group, unpack(gone))
    redis.call('HDEL', KEYS[2], unpack(gone))
  end
end
if #entries < count then
  local got = redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', count - #entries, 'STREAMS', stream, '>')
  if got then
    for _, e in ipairs(got[1][2]) do
      if type(e) == 'table' and e[2] then entries[#entries + 1] = e end
    end
  end
end
for _, e in ipairs(entries) do
  local id, fields = e[1], e[2]
  local pos = -1
  if ARGV[8] == '1' then
    local grp = 'default'
    for j = 1, #fields - 1, 2 do
      if fields[j] == 'group' then grp = fields[j + 1] end
    end
    pos = position(id, grp)
  end
  out[#out + 1] = id; out[#out + 1] = fields
  out[#out + 1] = redis.call('HINCRBY', KEYS[2], id, 1); out[#out + 1] = pos
end
return out
"""

_scripts: dict[tuple[int, str], redis.commands.core.Script] = {}


def _script(client: redis.Redis, source: str):
    """The registered script for this client (registered once per client and source)."""
    key = (id(client), source)
    registered = _scripts.get(key)
    if registered is None:
        registered = _scripts[key] = client.register_script(source)
    return registered


def run(client: redis.Redis, source: str, keys: list, args: list):
    """Run a script on its own (redis-py loads it when Redis does not know it)."""
    return _script(client, source)(keys=keys, args=args, client=client)


Queue = Callable[[redis.client.Pipeline], object]


def run_between(client: redis.Redis, source: str, keys: list, args: list, *, before: Queue | None = None,
                after: Queue | None = None) -> tuple[object, list]:
    """Run a script in one round trip with the commands ``before(pipeline)`` queues ahead of it (a
    batch handler's state, saved before its messages are acknowledged) and ``after(pipeline)``
    behind it (reads for the next batch). Returns (the script's reply, the replies of ``after``).

    The script goes by ``EVALSHA`` without redis-py's ``SCRIPT EXISTS`` check (a round trip of its
    own on every execute). When Redis does not know it (it restarted), it is loaded and the whole
    round trip runs again: the writes before are the same values, the reads after must follow the
    script. A failed ``before`` write is logged, not raised: the acknowledgement after it happened."""
    script = _script(client, source)
    results, at = _pipelined(client, script.sha, keys, args, before, after)
    if isinstance(results[at], redis.exceptions.NoScriptError):
        script.sha = client.script_load(source)
        results, at = _pipelined(client, script.sha, keys, args, before, after)
    for failed in (r for r in results[:at] if isinstance(r, Exception)):
        log.error("queues: a write before an acknowledgement failed: %s", failed)
    for failed in (r for r in results[at:] if isinstance(r, Exception)):
        raise failed
    return results[at], results[at + 1:]


def _pipelined(client: redis.Redis, sha: str, keys: list, args: list, before: Queue | None,
               after: Queue | None) -> tuple[list, int]:
    """(the replies of before + EVALSHA + after, the script's place among them)."""
    pipe = client.pipeline(transaction=False)
    if before is not None:
        before(pipe)
    at = len(pipe)
    pipe.evalsha(sha, len(keys), *keys, *args)
    if after is not None:
        after(pipe)
    return pipe.execute(raise_on_error=False), at
