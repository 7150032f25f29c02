"""The Lua scripts of the hot path, each one round trip per batch whatever its size, and how they
are called (with the writes a handler asks to land before its acknowledgement).

- ``SEND_MANY``: a batch of messages onto one stream: deduplication (``GET`` / ``SET EX``),
  capacity (one ``XLEN``), ``XADD``, the FIFO group list, one ``XTRIM MINID`` for the batch.
- ``CYCLE``: acknowledge a batch (one ``XACK``, ``XDEL`` and ``HDEL`` of its bookkeeping for the
  batch, rate counters, each one's place in its FIFO list), then receive the next one: reclaim
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

# Per-message arguments travel as one JSON argument and the per-message answers as one JSON string
# (Redis's Lua has cjson): redis-py packs and parses a handful of values per batch instead of a few
# per message, which was most of its CPU on the event path.

# KEYS: stream
# ARGV: max_messages (0 = no cap), dedup window (s), retention cutoff id ('' = none), the queue's key
#       prefix, FIFO ('1' = append each id to its group's list), the items as JSON: [[body, group,
#       dedup id ('' = none)], ...]
# -> JSON: [status (1 added, 0 duplicate, -1 full), stream id (of the first copy for a duplicate)]
#    per item, flat
SEND_MANY = """
local stream, cap, prefix, fifo = KEYS[1], tonumber(ARGV[1]), ARGV[4], ARGV[5] == '1'
local length = 0
if cap > 0 then length = redis.call('XLEN', stream) end
local out = {}
for _, item in ipairs(cjson.decode(ARGV[6])) do
  local body, grp, dedup = item[1], item[2], item[3]
  local dkey = false
  local prev = false
  if dedup ~= '' then dkey = prefix .. 'dedup:' .. dedup; prev = redis.call('GET', dkey) end
  if prev then
    out[#out + 1] = 0; out[#out + 1] = prev
  elseif cap > 0 and length >= cap then
    out[#out + 1] = -1; out[#out + 1] = ''
  else
    local id = redis.call('XADD', stream, '*', 'body', body, 'group', grp, 'dedup', dedup)
    length = length + 1
    if dkey then redis.call('SET', dkey, id, 'EX', tonumber(ARGV[2])) end
    if fifo then redis.call('RPUSH', prefix .. 'grp:' .. grp, id) end
    out[#out + 1] = 1; out[#out + 1] = id
  end
end
if ARGV[3] ~= '' then redis.call('XTRIM', stream, 'MINID', '~', ARGV[3]) end
return cjson.encode(out)
"""

# KEYS: stream, deliveries hash, errors hash, redrives hash, rate bucket, processed counter
# ARGV: group, consumer, count to receive (0 = none), idle ms, group-list key prefix ('' = not FIFO),
#       rate bucket ttl, counted ('1' = towards processing_rate), positions of the received ('1' / '0'),
#       the messages to ack as JSON [[id, group], ...], the messages whose FIFO position is wanted (a
#       batch received earlier, about to run) as JSON [[id, group], ...]
# -> JSON: [acked, [their positions (-1 = not listed)], [[id, [fields, flat], deliveries, FIFO position
#    (-1 = none or not asked)] per received message]]
CYCLE = """
local stream, group, prefix = KEYS[1], ARGV[1], ARGV[5]
local acks = cjson.decode(ARGV[9])
local acked = 0
if #acks > 0 then
  local ids = {}
  for i, a in ipairs(acks) do
    ids[i] = a[1]
    if prefix ~= '' and a[2] ~= '' then redis.call('LREM', prefix .. a[2], 1, a[1]) end
  end
  acked = redis.call('XACK', stream, group, unpack(ids))
  -- XDEL / HDEL of an id already acknowledged (by a consumer that reclaimed it) find nothing
  redis.call('XDEL', stream, unpack(ids))
  redis.call('HDEL', KEYS[2], unpack(ids))
  redis.call('HDEL', KEYS[3], unpack(ids))
  redis.call('HDEL', KEYS[4], unpack(ids))
  if ARGV[7] == '1' and acked > 0 then
    redis.call('INCRBY', KEYS[5], acked)
    redis.call('EXPIRE', KEYS[5], ARGV[6])
    redis.call('INCRBY', KEYS[6], acked)
  end
end
local function position(id, grp)
  if prefix == '' or grp == '' then return -1 end
  return redis.call('LPOS', prefix .. grp, id) or -1
end
local positions = {}
for i, a in ipairs(cjson.decode(ARGV[10])) do positions[i] = position(a[1], a[2]) end
local received = {}
local count = tonumber(ARGV[3])
if count > 0 then
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
  for i, e in ipairs(entries) do
    local id, fields = e[1], e[2]
    local pos = -1
    if ARGV[8] == '1' then
      local grp = 'default'
      for j = 1, #fields - 1, 2 do
        if fields[j] == 'group' then grp = fields[j + 1] end
      end
      pos = position(id, grp)
    end
    received[i] = {id, fields, redis.call('HINCRBY', KEYS[2], id, 1), pos}
  end
end
return cjson.encode({acked, positions, received})
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
