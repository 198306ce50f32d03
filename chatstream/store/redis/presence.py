"""The readers here, and reader presence across instances (the attach/detach
grace periods).

Readers of a stream generated here are counted here, without Redis. A reader
here of a stream generated elsewhere (a *remote* reader) is recorded in the
stream's reader set in Redis when it attaches and leaves, and sighted at
every beat of this instance (:mod:`.liveness`). A stream's idle time counts
from the last sighting of any reader, and a sighting stays fresh for at least
``DETACH_GRACE_S``, so a stalled reader process is taken for gone only after
the grace it would get for leaving.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from .. import Presence
from .copies import Mirror
from .copies import Reader
from .copies import ShippedStream
from .keys import StreamKeys
from .mirror import Multiplexer
from .state import Shared

__all__ = ["ReaderPresence"]

log = logging.getLogger(__name__)


class ReaderPresence:
    """Opens and closes the readers here; records remote ones in Redis and
    answers who is reading what."""

    def __init__(self, shared: Shared, multiplexer: Multiplexer) -> None:
        self._shared = shared
        self._multiplexer = multiplexer

    def open(self, stream_id: str) -> Reader:
        """A reader of the stream: of the copy held here, or of a new mirror.

        :raises NotFound: unknown or expired.
        :raises redis.RedisError: Redis did not answer (loading a mirror).
        """
        shared = self._shared
        buffer: ShippedStream | Mirror | None = shared.owned.get(stream_id)
        if buffer is None:
            buffer = shared.mirrors.get(stream_id)
            if buffer is None:
                buffer = self._multiplexer.load(stream_id)
        buffer.readers += 1
        reader = Reader(shared.me.instance, stream_id, buffer, self.release)
        if isinstance(buffer, ShippedStream):  # the owner counts its own readers
            buffer.ever_attached = True
            return reader
        shared.remote_readers[reader.member] = reader
        self._attached(reader)
        return reader

    def release(self, reader: Reader) -> None:
        """A reader closed (its ``close`` calls this once)."""
        shared = self._shared
        shared.remote_readers.pop(reader.member, None)
        buffer = reader.buffer
        buffer.readers -= 1
        if isinstance(buffer, ShippedStream):
            if not buffer.readers:
                buffer.idle_since = time.monotonic()
                if buffer.in_redis:
                    shared.owned.pop(reader.stream_id, None)
            return
        if not buffer.readers:
            shared.mirrors.pop(reader.stream_id, None)
        self._left(reader)

    def _attached(self, reader: Reader) -> None:
        """A remote reader attached: add it to the stream's reader set."""
        shared = self._shared
        keys = StreamKeys.of(reader.stream_id)
        try:
            pipe = shared.client.pipeline(transaction=False)
            pipe.zadd(keys.readers, {reader.member: time.time()})
            pipe.expire(keys.readers, shared.running_ttl_s)
            shared.scripts.mark(keys=[keys.meta], args=["attached", 1], client=pipe)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot record a reader's presence")

    def _left(self, reader: Reader) -> None:
        """A remote reader left: remove it, and note when."""
        shared = self._shared
        keys = StreamKeys.of(reader.stream_id)
        try:
            pipe = shared.client.pipeline(transaction=False)
            pipe.zrem(keys.readers, reader.member)
            shared.scripts.mark(keys=[keys.meta], args=["left_at", time.time()], client=pipe)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot record a reader leaving")

    def many(self, stream_ids: list[str]) -> dict[str, Presence]:
        """Cluster-wide reader presence: local readers first, Redis for the rest.

        A stream generated here with a reader here needs no Redis at all; the
        others are asked in one round trip. A remote reader counts while its
        last sighting is under ``stale_s`` old (at least the detach grace), and
        a stream's idle time runs from the last sighting of any reader (from
        its creation if none ever came). While Redis is failing, or right
        after a gap, remote presence is unknown and such streams are left out
        or reported attended: a missed beat is no evidence that a reader left.
        """
        shared = self._shared
        found: dict[str, Presence] = {}
        remote: list[str] = []
        for stream_id in stream_ids:
            local = shared.owned.get(stream_id)
            if local is not None and local.readers:
                found[stream_id] = Presence(local.readers, True, 0.0)
            else:
                remote.append(stream_id)
        if not remote or shared.writes.down:
            return found
        settled = shared.writes.settled(shared.liveness_s)
        now = time.time()
        pipe = shared.client.pipeline(transaction=False)
        for stream_id in remote:
            keys = StreamKeys.of(stream_id)
            pipe.zcount(keys.readers, now - shared.stale_s, "+inf")
            pipe.zrevrange(keys.readers, 0, 0, withscores=True)
            pipe.hmget(keys.meta, ["attached", "left_at", "created"])
        try:
            replies = pipe.execute()
        except redis.RedisError:  # the beat notices the outage; nobody is judged now
            return found
        for index, stream_id in enumerate(remote):
            presence = self._judge(stream_id, replies[3 * index : 3 * index + 3], now, settled)
            if presence is not None:
                found[stream_id] = presence
        return found

    def _judge(
        self, stream_id: str, replies: list[Any], now: float, settled: bool
    ) -> Presence | None:
        """One stream's presence from its three replies (``None``: it is gone)."""
        count, newest, (attached, left_at, created) = replies
        if created is None:
            return None
        seen = max([float(left_at or 0)] + [score for _, score in newest])
        ever = attached is not None or seen > 0
        idle = max(0.0, now - (seen if ever else float(created)))
        local = self._shared.owned.get(stream_id)
        if local is not None and local.readers:  # one attached while Redis answered
            count, ever, idle = local.readers, True, 0.0
        elif local is not None and local.ever_attached:  # a local reader came and went
            local_idle = time.monotonic() - local.idle_since
            idle = min(idle, local_idle) if ever else local_idle
            ever = True
        if not settled and ever:
            count, idle = max(int(count), 1), 0.0
        return Presence(int(count), ever, idle)
