"""The front of the Redis store: the stream store API, wiring the parts.

:class:`RedisStreamStore` answers ``create``, ``cancel``, ``status``,
``open_reader``, ``presence`` and the readiness ``ping``; it decides whether
a stream is held here (generated here, or followed here) or must be asked of
Redis, and hands the rest to its parts: the :class:`~.flusher.Flusher`, the
:class:`~.mirror.Multiplexer` and :class:`~.mirror.ControlStream`, the
:class:`~.liveness.Keeper` and :class:`~.presence.ReaderPresence`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import redis

from ...concurrency import Driver
from ...errors import NotFound
from ...errors import StoreUnavailable
from .. import Presence
from .. import new_stream_id
from . import connect
from .copies import Reader
from .copies import ShippedStream
from .copies import Writer
from .flusher import Flusher
from .keys import StreamKeys
from .liveness import Keeper
from .mirror import ControlStream
from .mirror import Multiplexer
from .presence import ReaderPresence
from .state import Shared
from .state import outage_tracker

__all__ = ["RedisStreamStore"]


class RedisStreamStore:
    """Streams in Redis, shared by every worker and machine.

    :param client: a redis-py client (its pool bounds the connections).
    :param blocking: a second client for the one blocking ``XREAD``.
    :param stale_s: a reader not seen for this long is taken for gone
        (raised to at least three beats).
    :param outage_budget_s: a Redis outage running streams survive.
    """

    def __init__(
        self,
        client: redis.Redis,
        blocking: redis.Redis,
        driver: Driver,
        *,
        ttl_s: float,
        running_ttl_s: float,
        beat_s: float = 1.0,
        liveness_s: float = 5.0,
        max_events: int = 20_000,
        stale_s: float = 30.0,
        outage_budget_s: float = 30.0,
    ) -> None:
        self.client = client
        self.driver = driver
        self._shared = shared = Shared.create(
            client,
            driver,
            ttl_s=ttl_s,
            running_ttl_s=running_ttl_s,
            beat_s=beat_s,
            liveness_s=liveness_s,
            stale_s=stale_s,
            max_events=max_events,
            outage_budget_s=outage_budget_s,
        )
        self.instance = shared.me.instance
        self._flusher = Flusher(shared)
        self._keeper = Keeper(shared, self._flusher)
        self._flusher.on_liveness_lost = self._keeper.resync
        self._control = ControlStream(shared)
        reads = outage_tracker("reads", outage_budget_s, liveness_s)
        self._multiplexer = Multiplexer(shared, blocking, self._control, reads)
        self._presence = ReaderPresence(shared, self._multiplexer)
        self._started = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], driver: Driver) -> RedisStreamStore:
        client, blocking = connect.clients(config)
        return cls(client, blocking, driver, **connect.settings(config))

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.driver.spawn(self._flusher.run)
            self.driver.spawn(self._multiplexer.run)
            self.driver.spawn(self._keeper.run)

    def close(self) -> None:
        """Stop the background tasks (each ends within a beat)."""
        self._shared.stopped = True
        self._flusher.wake()

    def create(self) -> Writer:
        """Register a new running stream owned by this instance.

        The stream's meta is written by the flusher together with whatever
        else is pending (a group commit); this waits until it is in Redis, so
        another instance can serve the stream as soon as the POST has answered.

        :raises StoreUnavailable: Redis cannot be reached (at once while an
            outage is known).
        """
        self._start()
        if self._shared.writes.down:
            raise StoreUnavailable("The stream store is unreachable; try again shortly.")
        stream = ShippedStream(new_stream_id(), self.driver)
        if not self._flusher.create(stream):
            raise StoreUnavailable("The stream store is unreachable; try again shortly.")
        self._shared.owned[stream.stream_id] = stream
        return Writer(stream, self._flusher.mark_dirty)

    def cancel(self, stream_id: str, reason: str) -> bool:
        """Stop a stream wherever it runs. :returns: False if it had ended.

        :raises NotFound: unknown or expired stream.
        """
        stream = self._shared.owned.get(stream_id)
        if stream is not None:
            if stream.finished:
                return False
            stream.request_cancel(reason)
            return True
        with _unavailable_on_error():
            return self._control.cancel_elsewhere(stream_id, reason)

    def status(self, stream_id: str) -> tuple[int, bool]:
        """``(highest id a reader may hold, finished)``.

        The owner serves its own readers before its batch reaches Redis, so
        while a stream runs elsewhere a reader may legitimately hold an id
        Redis has not seen yet: any id up to ``max_events`` is then accepted
        (the reader simply waits for what follows it). Once finished, Redis
        has every event and the bound is exact.

        :raises NotFound: unknown or expired.
        """
        shared = self._shared
        stream = shared.owned.get(stream_id)
        if stream is not None:
            return len(stream.frames), stream.finished
        mirror = shared.mirrors.get(stream_id)
        if mirror is not None:  # followed here already: no need to ask Redis (or wait for it)
            return (len(mirror.frames), True) if mirror.finished else (shared.max_events, False)
        with _unavailable_on_error():
            state, last = self.client.hmget(StreamKeys.of(stream_id).meta, ["state", "last"])
        if state is None:
            raise NotFound("No such stream (unknown id, or it expired).")
        if state == b"finished":
            return int(last or 0), True
        return shared.max_events, False

    def open_reader(self, stream_id: str) -> Reader:
        """A reader of the stream, wherever it is generated.

        :raises NotFound: unknown or expired.
        :raises StoreUnavailable: Redis cannot be reached.
        """
        self._start()
        with _unavailable_on_error():
            return self._presence.open(stream_id)

    def presence(self, stream_id: str) -> Presence:
        found = self.presence_many([stream_id])
        if stream_id not in found:
            raise NotFound("No such stream (unknown id, or it expired).")
        return found[stream_id]

    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]:
        """Cluster-wide reader presence (see :meth:`.ReaderPresence.many`)."""
        return self._presence.many(stream_ids)

    def wake_all(self) -> None:
        """Wake every waiting reader of this process (shutdown)."""
        for buffer in [*self._shared.owned.values(), *self._shared.mirrors.values()]:
            buffer.wake()

    def sweep(self) -> int:
        return 0  # Redis expires keys itself (every key has a TTL)

    def ping(self) -> bool:
        """Redis accepts a write (a reachable Redis at ``maxmemory`` refuses them)."""
        try:
            accepted = bool(self.client.set(self._shared.me.probe, 1, px=10_000))
        except redis.RedisError:
            return False
        self._shared.writes.ok()  # new streams are accepted at once, not at the next beat
        return accepted


@contextlib.contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """A Redis failure in a request becomes a 503 ``store_unavailable``."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable("The stream store is unreachable; try again shortly.") from exc
