"""Lua scripts that keep a Redis stream's events and state consistent.

Key layout for a stream ``<id>`` (the braces are a Redis Cluster hash tag, so
all of one stream's keys live on one shard):

* ``cs:{<id>}:ev``      a Redis Stream; one entry per written batch: id
  ``0-<last event id in it>``, ``f`` its events' framed SSE bytes joined,
  ``n`` how many (and ``t = 1`` on the batch with the terminal event);
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

#: KEYS: ev1, meta1, ev2, meta2, ... ARGV: running ttl, finished ttl, then per
#: stream: last event id of its batch, final (0/1), the batch's frames joined,
#: how many frames.
#: One entry per stream per batch (id ``0-<last>``, field ``n`` = its event
#: count), and one script call for many streams: Redis and redis-py pay per
#: flush, not per token. Appends only while the stream runs, so an interrupted
#: stream stays closed even if its (slow, not dead) owner writes later.
APPEND = """
local running_ttl, finished_ttl = ARGV[1], ARGV[2]
for i = 1, #KEYS / 2 do
  local ev, meta, a = KEYS[2 * i - 1], KEYS[2 * i], 3 + (i - 1) * 4
  if redis.call('HGET', meta, 'state') == 'running' then
    if ARGV[a + 1] == '1' then
      redis.call('XADD', ev, '0-' .. ARGV[a], 'f', ARGV[a + 2], 'n', ARGV[a + 3], 't', '1')
      redis.call('HSET', meta, 'last', ARGV[a], 'state', 'finished')
      redis.call('EXPIRE', ev, finished_ttl)
      redis.call('EXPIRE', meta, finished_ttl)
    else
      redis.call('XADD', ev, '0-' .. ARGV[a], 'f', ARGV[a + 2], 'n', ARGV[a + 3])
      redis.call('HSET', meta, 'last', ARGV[a])
      redis.call('EXPIRE', ev, running_ttl)
    end
  end
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
redis.call('XADD', KEYS[1], '0-' .. seq, 'f', 'id: ' .. seq .. '\\n' .. ARGV[1], 'n', 1, 't', '1')
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
