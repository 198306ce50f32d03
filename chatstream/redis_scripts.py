"""Lua scripts that keep a Redis stream's events and state consistent.

Key layout for a stream ``<id>`` (the braces are a Redis Cluster hash tag, so
all of one stream's keys live on one shard):

* ``cs:{<id>}:ev``      a Redis Stream; entry ``0-<n>`` holds event ``n``'s
  framed SSE bytes in field ``f`` (and ``t = 1`` on the terminal event);
* ``cs:{<id>}:meta``    a hash: ``state`` (running | finished), ``last``,
  ``owner`` (the instance that generates), ``created``, ``cancel``,
  ``attached``, ``left_at``;
* ``cs:{<id>}:readers`` a sorted set of *remote* reader ids (readers on other
  instances than the owner) scored by last-seen time;
* ``cs:inst:<instance>`` exists while that instance is alive: it refreshes the
  key's short TTL every beat, so liveness costs one command per instance, not
  one per stream.

Every stream key has a TTL: ``GENERATION_TIMEOUT_S + STREAM_TTL_S`` while
running (no generation outlives its timeout), ``STREAM_TTL_S`` once finished.
"""

from __future__ import annotations

#: KEYS: ev, meta. ARGV: first seq, final (0/1), running ttl, finished ttl, frames...
#: Appends only while the stream runs, so an interrupted stream stays closed
#: even if its (slow, not dead) owner writes later.
APPEND = """
if redis.call('HGET', KEYS[2], 'state') ~= 'running' then return 0 end
local seq = tonumber(ARGV[1])
local n = #ARGV
for i = 5, n do
  if i == n and ARGV[2] == '1' then
    redis.call('XADD', KEYS[1], '0-' .. seq, 'f', ARGV[i], 't', '1')
  else
    redis.call('XADD', KEYS[1], '0-' .. seq, 'f', ARGV[i])
  end
  seq = seq + 1
end
redis.call('HSET', KEYS[2], 'last', seq - 1)
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], 'state', 'finished')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
else
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

#: KEYS: ev, meta, readers, the owner's instance key. ARGV: event body, finished ttl.
#: Ends a stream whose owner is gone (its instance key expired: the process
#: died): appends an ``error`` event with the next id. The body is
#: ``event: ...\\ndata: ...\\n\\n``; only the ``id:`` line is added here,
#: because only here is the id known.
INTERRUPT = """
if redis.call('HGET', KEYS[2], 'state') ~= 'running' then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'last') or '0') + 1
redis.call('XADD', KEYS[1], '0-' .. seq, 'f', 'id: ' .. seq .. '\\n' .. ARGV[1], 't', '1')
redis.call('HSET', KEYS[2], 'state', 'finished', 'last', seq)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 1
"""

#: KEYS: meta. ARGV: reason. Returns the owner, or -1 (already ended) / -2 (unknown).
CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -2 end
if state ~= 'running' then return -1 end
redis.call('HSETNX', KEYS[1], 'cancel', ARGV[1])
return redis.call('HGET', KEYS[1], 'owner')
"""


def keys(stream_id: str) -> tuple[str, str, str]:
    """``(events, meta, readers)`` keys of one stream."""
    tag = f"cs:{{{stream_id}}}"
    return f"{tag}:ev", f"{tag}:meta", f"{tag}:readers"


def instance_key(instance: str) -> str:
    """Exists while ``instance`` is alive (short TTL, refreshed every beat)."""
    return f"cs:inst:{instance}"


def control_key(instance: str) -> str:
    """The control stream of one instance (cancel requests, wake-ups)."""
    return f"cs:ctl:{instance}"
