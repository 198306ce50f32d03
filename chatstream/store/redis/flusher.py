"""Creating streams in Redis and shipping their events there: the flusher.

One task per store. A writer's ``append`` marks its stream dirty; each flush
ships every dirty stream (and every stream being created: a group commit, so a
burst of POSTs costs a few round trips, not one each) in one pipeline of
append-script calls. The script answers where Redis really is for each
stream, so a flush that fails, or whose reply is lost, loses nothing: the
stream stays dirty and the next try resends from where Redis is, including a
Redis that came back empty (the stream is rewritten from event 1).

While writes fail the flusher retries with backoff; only an outage past the
budget ends this instance's running streams with ``store_unavailable``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from .connect import POOL_WAIT_S
from .copies import ShippedStream
from .keys import StreamKeys
from .state import Shared

__all__ = ["FLUSH_STREAMS", "Flusher"]

log = logging.getLogger(__name__)

#: Streams per append script call (a script blocks Redis while it runs).
FLUSH_STREAMS = 256

#: One stream of a flush: the stream, whether the batch is final, its end.
_Item = tuple[ShippedStream, bool, int]


class Flusher:
    """Ships new streams and dirty streams to Redis; settles where Redis is.

    ``on_liveness_lost`` is called when a flush finds this instance's
    liveness key gone (the keeper's resync).
    """

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.on_liveness_lost: Callable[[], None] = lambda: None
        #: Streams with events Redis has not confirmed (insertion-ordered).
        self._dirty: dict[str, ShippedStream] = {}
        self._creating: list[tuple[ShippedStream, Any, list[bool]]] = []
        self._pending_ready = shared.driver.event()

    def create(self, stream: ShippedStream) -> bool:
        """Have the next flush write the stream's meta. :returns: it is in Redis."""
        done = self._shared.driver.event()
        outcome: list[bool] = []
        self._creating.append((stream, done, outcome))
        self._pending_ready.set()
        return bool(done.wait(POOL_WAIT_S) and outcome and outcome[0])

    def mark_dirty(self, stream: ShippedStream) -> None:
        """The stream has events (or a state) Redis has not confirmed."""
        if not self._dirty:
            self._pending_ready.set()
        self._dirty[stream.stream_id] = stream

    def wake(self) -> None:
        """Flush now (or notice the store stopped)."""
        self._pending_ready.set()

    def run(self) -> None:
        """The flusher task: flush whenever something is pending, until stopped."""
        while not self._shared.stopped:
            self._pending_ready.wait(self._shared.beat_s)
            if not self._dirty and not self._creating:
                continue
            self._pending_ready = self._shared.driver.event()
            creating, self._creating = self._creating, []
            dirty = [stream for stream in self._dirty.values() if not stream.in_redis]
            self._dirty = {}
            # ``finished`` before the length (see EventBuffer.take): a batch
            # marked final always holds the final frame.
            batch = [(stream, stream.finished, len(stream.frames)) for stream in dirty]
            batch += [(stream, False, 0) for stream, _, _ in creating]
            try:
                replies = self._write(batch, creating=bool(creating))
            except redis.RedisError as exc:
                self._failed(exc, creating, dirty)
                continue
            if self._shared.writes.ok() is not None:
                log.warning("redis store: catching up %d stream(s)", len(self._dirty) + len(batch))
            for _, done, outcome in creating:
                outcome.append(True)
                done.set()
            for (stream, final, end), have in zip(batch, replies, strict=True):
                self._settle(stream, final, end, int(have))

    def _failed(
        self,
        exc: redis.RedisError,
        creating: list[tuple[ShippedStream, Any, list[bool]]],
        dirty: list[ShippedStream],
    ) -> None:
        for _, done, outcome in creating:
            outcome.append(False)
            done.set()
        for stream in dirty:  # nothing is lost: try again from the same place
            self._dirty.setdefault(stream.stream_id, stream)
        if self._shared.writes.failed(exc):
            self.end_running()
        self._drop_expired_unflushed()
        self._shared.driver.sleep(self._shared.writes.delay())

    def _settle(self, stream: ShippedStream, final: bool, end: int, have: int) -> None:
        """Take in where Redis is for one stream after a flush."""
        stream.verify = False
        if have < 0:  # Redis ended it: its owner (this process) was judged dead
            stream.closed = True
            if not stream.finished:
                log.warning(
                    "redis store: stream %s was closed in Redis; stopping it", stream.stream_id[:8]
                )
                stream.request_cancel("interrupted")
        elif have > len(stream.frames):  # cannot happen: only the owner writes a stream
            log.error(
                "redis store: Redis holds more of stream %s than its owner", stream.stream_id[:8]
            )
            stream.closed = True
        elif have != end:  # Redis is elsewhere (lost data, or a lost reply): resend from there
            stream.flushed = have
            self.mark_dirty(stream)
        else:
            stream.flushed = end
        if stream.in_redis and not stream.readers:
            self._shared.owned.pop(stream.stream_id, None)  # Redis serves it from now on

    def _write(self, batch: list[_Item], *, creating: bool) -> list[int]:
        """Ship one flush in one round trip (a script call per ``FLUSH_STREAMS``
        streams). :returns: per stream, where Redis is (the script's answer)."""
        shared = self._shared
        pipe = shared.client.pipeline(transaction=False)
        if creating:  # a new stream's owner must be alive at once
            # EXISTS then SET rather than SET ... GET, which needs Redis 6.2.
            pipe.exists(shared.me.alive)
            pipe.set(shared.me.alive, 1, px=shared.alive_ms)
        for start in range(0, len(batch), FLUSH_STREAMS):
            keys: list[str] = []
            args: list[Any] = [shared.running_ttl_s, shared.ttl_s, shared.me.instance]
            for stream, final, end in batch[start : start + FLUSH_STREAMS]:
                stream_keys = StreamKeys.of(stream.stream_id)
                keys += (stream_keys.events, stream_keys.meta)
                args += (stream.flushed + 1, end, int(final), _joined(stream, end), stream.created)
            shared.scripts.append(keys=keys, args=args, client=pipe)
        replies = pipe.execute()
        if creating:
            was_alive, _ = replies.pop(0), replies.pop(0)
            if not was_alive:
                self.on_liveness_lost()
        return [have for reply in replies for have in reply]

    def end_running(self) -> None:
        """The outage outlasted its budget: end this instance's running streams.

        Their terminal ``error`` event still goes to Redis if it comes back.
        """
        running = [stream for stream in self._shared.owned.values() if not stream.finished]
        log.error("redis store: ending %d running stream(s): store_unavailable", len(running))
        for stream in running:
            stream.request_cancel("store_unavailable")

    def _drop_expired_unflushed(self) -> None:
        """Forget finished streams Redis would have expired by now (bounds memory
        while Redis stays away); their readers here had every event."""
        now = time.monotonic()
        owned = self._shared.owned
        for stream_id, stream in list(owned.items()):
            if (
                stream.finished
                and not stream.readers
                and now - stream.ended_at > self._shared.ttl_s
            ):
                owned.pop(stream_id, None)
                self._dirty.pop(stream_id, None)


def _joined(stream: ShippedStream, end: int) -> bytes:
    """The frames ``flushed..end`` joined: one slice of the stream's FrameLog
    buffer, not a bytes object per frame (bench/README: S4)."""
    frames = stream.frames
    stop = min(end, len(frames))
    ends = frames.ends
    return bytes(frames.data[ends[min(stream.flushed, stop)] : ends[stop]])
