"""Owner liveness: this instance's heartbeat in Redis, and judging other owners.

A keeper task beats once per ``beat_s``: it refreshes this instance's
liveness key (TTL ``liveness_s``; one command however many streams run) and
the sightings of this instance's remote readers (:mod:`.presence` reads
them). If the liveness key was gone, Redis lost its data or this process was
away: :meth:`Keeper.resync` has every stream held here checked again.

A stream followed here whose owner's liveness key expired (the process died)
is ended in Redis with an ``error`` event ``generation_interrupted``
(:func:`interrupt_if_dead`). Right after a gap (Redis or this process
stalled) nobody is judged dead until the others had ``liveness_s`` to beat
again.
"""

from __future__ import annotations

import logging
import time

import redis

from ... import sse
from .flusher import Flusher
from .keys import InstanceKeys
from .keys import StreamKeys
from .state import Shared

__all__ = ["Keeper", "interrupt_if_dead"]

log = logging.getLogger(__name__)


class Keeper:
    """The beat: this instance's liveness, its remote readers' sightings, and
    the owners of the streams it follows."""

    def __init__(self, shared: Shared, flusher: Flusher) -> None:
        self._shared = shared
        self._flusher = flusher

    def run(self) -> None:
        """The keeper task: one beat per ``beat_s``, until stopped."""
        shared, writes = self._shared, self._shared.writes
        last_beat = time.monotonic()
        while not shared.stopped:
            shared.driver.sleep(shared.beat_s)
            late = time.monotonic() - last_beat - shared.beat_s
            if late > writes.gap_s and not writes.down:  # our sightings went stale
                log.warning("redis store: beat %.1f s late (this process stalled)", late)
            try:
                was_alive = self._beat()
            except redis.RedisError as exc:
                if writes.failed(exc):
                    self._flusher.end_running()
                continue
            writes.ok()
            last_beat = time.monotonic()
            if not was_alive:
                self.resync()
            if writes.settled(shared.liveness_s):
                self._check_owners()

    def _beat(self) -> bool:
        """Refresh the liveness key and sight every remote reader.

        :returns: the liveness key still existed.
        """
        shared = self._shared
        now = time.time()
        pipe = shared.client.pipeline(transaction=False)
        pipe.exists(shared.me.alive)
        pipe.set(shared.me.alive, 1, px=shared.alive_ms)
        for reader in list(shared.remote_readers.values()):
            pipe.zadd(StreamKeys.of(reader.stream_id).readers, {reader.member: now})
        return bool(pipe.execute()[0])

    def resync(self) -> None:
        """Our liveness key was gone: Redis lost its data, or we were away.

        Every stream this process still holds is checked, finished ones too
        (an empty batch answers where Redis is; a lost one is then rewritten
        from event 1), and the reader sets recreated by the beat get their TTL.
        """
        shared = self._shared
        for stream in list(shared.owned.values()):
            stream.verify = True
            self._flusher.mark_dirty(stream)
        remote = list(shared.remote_readers.values())
        if not remote:
            return
        try:
            pipe = shared.client.pipeline(transaction=False)
            for reader in remote:
                pipe.expire(StreamKeys.of(reader.stream_id).readers, shared.running_ttl_s)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot set the TTL of reader sets")

    def _check_owners(self) -> None:
        """End mirrored streams whose owner is gone (its liveness key expired)."""
        shared = self._shared
        following = [sid for sid, m in list(shared.mirrors.items()) if not m.finished]
        if not following:
            return
        try:
            pipe = shared.client.pipeline(transaction=False)
            for stream_id in following:
                pipe.hget(StreamKeys.of(stream_id).meta, "owner")
            for stream_id, owner in zip(following, pipe.execute(), strict=True):
                interrupt_if_dead(shared, stream_id, owner)
        except redis.RedisError:
            log.warning("redis store: cannot check the owners of followed streams")


def interrupt_if_dead(shared: Shared, stream_id: str, owner: bytes | str | None) -> None:
    """End the stream with ``generation_interrupted`` if its owner is gone."""
    if owner is None:
        return
    keys = StreamKeys.of(stream_id)
    body = sse.encode_json(
        {
            "code": "generation_interrupted",
            "message": "The server generating this answer stopped; please retry.",
        },
        event="error",
    )
    alive = InstanceKeys.of(owner).alive
    shared.scripts.interrupt(
        keys=[keys.events, keys.meta, keys.readers, alive], args=[body, shared.ttl_s]
    )
