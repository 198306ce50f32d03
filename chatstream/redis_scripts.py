"""Lua scripts that keep a Redis stream's events and state consistent.

Key layout for a stream ``<id>`` (the braces are a Redis Cluster hash tag, so
all of one stream's keys live on one shard):

* ``cs:{<id>}:ev``      a Redis Stream; entry ``0-<n>`` holds event ``n``'s
  framed SSE bytes in field ``f`` (and ``t = 1`` on the terminal event);
* ``cs:{<id>}:meta``    a hash: ``state`` (running | finished), ``last``,
  ``owner`` (the instance that generates), ``created``, ``beat`` (the owner's
  last heartbeat), ``cancel``, ``attached``, ``left_at``;
* ``cs:{<id>}:readers`` a sorted set of reader ids scored by last-seen time.

Every key has a TTL: generous while running (refreshed by the owner's
heartbeat), ``STREAM_TTL_S`` once finished.
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

#: KEYS: ev, meta, readers. ARGV: now, stale after (s), event body, finished ttl.
#: Ends a stream whose owner stopped beating (its process died): appends an
#: ``error`` event with the next id. The body is ``event: ...\\ndata: ...\\n\\n``;
#: only the ``id:`` line is added here, because only here is the id known.
INTERRUPT = """
if redis.call('HGET', KEYS[2], 'state') ~= 'running' then return 0 end
local beat = tonumber(redis.call('HGET', KEYS[2], 'beat') or '0')
if tonumber(ARGV[1]) - beat < tonumber(ARGV[2]) then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'last') or '0') + 1
redis.call('XADD', KEYS[1], '0-' .. seq, 'f', 'id: ' .. seq .. '\\n' .. ARGV[3], 't', '1')
redis.call('HSET', KEYS[2], 'state', 'finished', 'last', seq)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
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


def control_key(instance: str) -> str:
    """The control stream of one instance (cancel requests, wake-ups)."""
    return f"cs:ctl:{instance}"
