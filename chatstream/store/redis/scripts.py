"""Lua scripts that keep a Redis stream's events and state consistent.

Each runs atomically in Redis; the key layout they work on is in
:mod:`.keys`. :class:`Scripts` registers them on a client.
"""

from __future__ import annotations

import redis

__all__ = ["APPEND", "CANCEL", "INTERRUPT", "MARK", "Scripts"]

#: KEYS: ev1, meta1, ev2, meta2, ... ARGV: running ttl, finished ttl, owner,
#: then per stream: first and last event id of its batch, final (0/1), the
#: batch's frames joined, the stream's creation time.
#: One entry per stream per batch (id ``0-<last>``, field ``n`` = its event
#: count), and one script call for many streams: Redis and redis-py pay per
#: flush, not per token.
#:
#: Returns, per stream, the last event id Redis holds after the call, or -1
#: when the stream is closed (finished by someone else: its owner was judged
#: dead). The owner compares it with the batch's last id; any difference means
#: Redis is not where the owner thought, and the owner resends from there.
#: That one rule covers a reply lost after Redis applied the batch (Redis is
#: ahead: nothing is written twice), a Redis restarted empty (the stream is
#: gone: its meta is rebuilt when the batch starts at event 1, so the owner
#: resends from the start) and a first batch (the POST's stream creation is a
#: batch of no event starting at 1). A closed stream stays closed even if its
#: slow, not dead, owner writes later.
APPEND = """
local running_ttl, finished_ttl, owner = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 1, #KEYS / 2 do
  local ev, meta, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 5
  local first, last = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local state = redis.call('HGET', meta, 'state')
  if not state and first == 1 then
    redis.call('DEL', ev)
    redis.call('HSET', meta, 'state', 'running', 'last', 0, 'owner', owner, 'created', ARGV[a + 4])
    redis.call('EXPIRE', meta, running_ttl)
    state = 'running'
  end
  if not state then
    out[i] = 0
  elseif state ~= 'running' then
    out[i] = -1
  else
    local have = tonumber(redis.call('HGET', meta, 'last') or '0')
    if have ~= first - 1 or last < first then
      out[i] = have
    elseif ARGV[a + 2] == '1' then
      redis.call('XADD', ev, '0-' .. last, 'f', ARGV[a + 3], 'n', last - first + 1, 't', '1')
      redis.call('HSET', meta, 'last', last, 'state', 'finished')
      redis.call('EXPIRE', ev, finished_ttl)
      redis.call('EXPIRE', meta, finished_ttl)
      out[i] = last
    else
      redis.call('XADD', ev, '0-' .. last, 'f', ARGV[a + 3], 'n', last - first + 1)
      redis.call('HSET', meta, 'last', last)
      redis.call('EXPIRE', ev, running_ttl)
      out[i] = last
    end
  end
end
return out
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

#: KEYS: meta. ARGV: field, value. Sets a field of a stream's meta only while
#: the stream exists: a plain HSET after it expired (or after Redis lost it)
#: would leave a meta hash with no TTL behind.
MARK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""

#: KEYS: meta. ARGV: reason. Returns the owner, or -1 (already ended) / -2 (unknown).
CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -2 end
if state ~= 'running' then return -1 end
redis.call('HSETNX', KEYS[1], 'cancel', ARGV[1])
return redis.call('HGET', KEYS[1], 'owner')
"""


class Scripts:
    """The scripts, registered on one client (call them with ``keys=``, ``args=``,
    and ``client=`` a pipeline to batch them)."""

    def __init__(self, client: redis.Redis) -> None:
        self.append = client.register_script(APPEND)
        self.interrupt = client.register_script(INTERRUPT)
        self.cancel = client.register_script(CANCEL)
        self.mark = client.register_script(MARK)
