"""The stream store on Redis Streams: one contract across workers and machines.

A POST may land on instance A and its ``EventSource`` on instance B. The
generating instance (the *owner*) keeps a local :class:`EventBuffer` for its
own readers and ships every batch of frames to Redis (``XADD`` inside a Lua
script, pipelined across streams by one flusher task). Other instances read a
stream through a local *mirror*: one ``XRANGE`` to catch up, then one blocking
``XREAD`` per worker that multiplexes every stream its readers follow, so
Redis connections stay flat however many streams are open. The same
``XREAD`` also watches this instance's control stream, where other instances
post cancel requests (and new readers post a wake-up).

A keeper task beats once per ``REDIS_BEAT_S``: it refreshes this instance's
liveness key (TTL ``REDIS_LIVENESS_S``; one command however many streams run)
and the presence of readers following remote streams. Readers of a stream
generated here are counted here, without Redis. A mirror whose owner's
liveness key expired (the process died) is ended with an ``error`` event
``generation_interrupted``.

Presence (the attach/detach grace periods): a remote reader is seen at every
beat of its instance; a stream's idle time counts from the last sighting of
any reader, and a sighting stays fresh for at least ``DETACH_GRACE_S``, so a
stalled reader process is taken for gone only after the grace it would get
for leaving. Right after a gap (Redis or this process stalled) nobody is
judged absent or dead until the others had ``REDIS_LIVENESS_S`` to beat again.

Redis outages (:mod:`chatstream.store.redis.outage`): the owner keeps every event
of its streams in memory anyway, and Redis is told only "here is what follows
event N" (the append script answers where Redis really is). So a failed flush
loses nothing: the owner's readers keep streaming, the flusher retries with
backoff and catches Redis up when it answers, including a Redis that came
back empty (the running streams are rewritten from event 1). Readers of
mirrors wait with heartbeats and resume. Only an outage longer than
``REDIS_OUTAGE_BUDGET_S`` ends running streams with ``store_unavailable``;
until Redis answers again, new streams are refused (503) at once.

Config keys: ``REDIS_URL``, ``REDIS_BEAT_S``, ``REDIS_LIVENESS_S``,
``REDIS_OUTAGE_BUDGET_S``, ``STREAM_TTL_S``, ``GENERATION_TIMEOUT_S``,
``DETACH_GRACE_S``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import redis

from ... import sse
from ...concurrency import Driver
from ...errors import NotFound
from ...errors import StoreUnavailable
from ...streams import Presence
from ...streams import new_stream_id
from . import connect
from .copies import Mirror
from .copies import Reader
from .copies import ShippedStream
from .copies import Writer
from .keys import InstanceKeys
from .keys import StreamKeys
from .outage import OutageTracker
from .scripts import Scripts

log = logging.getLogger(__name__)

#: Streams per append script call (a script blocks Redis while it runs).
FLUSH_STREAMS = 256
_LOST = sse.encode_json(  # id-less: a later resume keeps the last real id
    {"code": "store_unavailable", "message": "The stream store became unreachable; retry."},
    event="error",
)


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
        self.blocking = blocking
        self.driver = driver
        self.ttl_s = int(max(1, ttl_s))
        self.running_ttl_s = int(max(1, running_ttl_s))
        self.beat_s = beat_s
        self.liveness_s = liveness_s
        self.max_events = max_events
        self.stale_s = max(3 * beat_s, stale_s)
        self.me = InstanceKeys.of(secrets.token_hex(8))
        self.instance = self.me.instance
        self.control = self.me.control
        self.alive_key = self.me.alive
        self._alive_ms = int(liveness_s * 1000)
        self.scripts = Scripts(client)
        self._local: dict[str, ShippedStream] = {}
        self._mirrors: dict[str, Mirror] = {}
        self._readers: dict[str, Reader] = {}
        #: Streams with events Redis has not confirmed (insertion-ordered).
        self._dirty: dict[str, ShippedStream] = {}
        self._creating: list[tuple[ShippedStream, Any, list[bool]]] = []
        self._pending_ready = driver.event()
        # A gap of half the liveness period may already have let an owner's
        # liveness key expire (it is refreshed every beat, beat <= liveness/2).
        self._writes = OutageTracker("writes", outage_budget_s, liveness_s / 2)
        self._reads = OutageTracker("reads", outage_budget_s, liveness_s / 2)
        self._started = False
        self._stopped = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], driver: Driver) -> RedisStreamStore:
        client, blocking = connect.clients(config)
        return cls(client, blocking, driver, **connect.settings(config))

    # -- background tasks -----------------------------------------------------

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.driver.spawn(self._flusher)
            self.driver.spawn(self._multiplexer)
            self.driver.spawn(self._keeper)

    def close(self) -> None:
        self._stopped = True
        self._pending_ready.set()

    # -- writing ------------------------------------------------------------

    def create(self) -> Writer:
        """Register a new running stream owned by this instance.

        The stream's meta is written by the flusher together with whatever
        else is pending (a group commit: a burst of POSTs costs a few round
        trips, not one each); this waits until it is in Redis, so another
        instance can serve the stream as soon as the POST has answered.

        :raises StoreUnavailable: Redis cannot be reached (at once while an
            outage is known).
        """
        self._start()
        if self._writes.down:
            raise StoreUnavailable("The stream store is unreachable; try again shortly.")
        local = ShippedStream(new_stream_id(), self.driver)
        done = self.driver.event()
        outcome: list[bool] = []
        self._creating.append((local, done, outcome))
        self._pending_ready.set()
        if not done.wait(connect.POOL_WAIT_S) or not outcome or not outcome[0]:
            raise StoreUnavailable("The stream store is unreachable; try again shortly.")
        self._local[local.stream_id] = local
        return Writer(local, self.mark_dirty)

    def mark_dirty(self, local: ShippedStream) -> None:
        if not self._dirty:
            self._pending_ready.set()
        self._dirty[local.stream_id] = local

    def _flusher(self) -> None:
        while not self._stopped:
            self._pending_ready.wait(self.beat_s)
            if not self._dirty and not self._creating:
                continue
            self._pending_ready = self.driver.event()
            creating, self._creating = self._creating, []
            dirty = [local for local in self._dirty.values() if not local.in_redis]
            self._dirty = {}
            # ``finished`` before the length (see EventBuffer.take): a batch
            # marked final always holds the final frame.
            batch = [(local, local.finished, len(local.frames)) for local in dirty]
            batch += [(local, False, 0) for local, _, _ in creating]
            try:
                replies = self._write(batch, creating=bool(creating))
            except redis.RedisError as exc:
                for _, done, outcome in creating:
                    outcome.append(False)
                    done.set()
                for local in dirty:  # nothing is lost: try again from the same place
                    self._dirty.setdefault(local.stream_id, local)
                if self._writes.failed(exc):
                    self._lose_local()
                self._drop_expired_unflushed()
                self.driver.sleep(self._writes.delay())
                continue
            if self._writes.ok() is not None:
                log.warning("redis store: catching up %d stream(s)", len(self._dirty) + len(batch))
            for _, done, outcome in creating:
                outcome.append(True)
                done.set()
            for (local, final, end), have in zip(batch, replies, strict=True):
                self._settle(local, final, end, int(have))

    def _settle(self, local: ShippedStream, final: bool, end: int, have: int) -> None:
        """Take in where Redis is for one stream after a flush."""
        local.verify = False
        if have < 0:  # Redis ended it: its owner (this process) was judged dead
            local.closed = True
            if not local.finished:
                log.warning(
                    "redis store: stream %s was closed in Redis; stopping it", local.stream_id[:8]
                )
                local.request_cancel("interrupted")
        elif have > len(local.frames):  # cannot happen: only the owner writes a stream
            log.error(
                "redis store: Redis holds more of stream %s than its owner", local.stream_id[:8]
            )
            local.closed = True
        elif have != end:  # Redis is elsewhere (lost data, or a lost reply): resend from there
            local.flushed = have
            self.mark_dirty(local)
        else:
            local.flushed = end
        if local.in_redis and not local.readers:
            self._local.pop(local.stream_id, None)  # Redis serves it from now on

    def _write(self, batch: list[tuple[ShippedStream, bool, int]], *, creating: bool) -> list[int]:
        """Ship one flush in one round trip (a script call per ``FLUSH_STREAMS``
        streams). :returns: per stream, where Redis is (the script's answer)."""
        pipe = self.client.pipeline(transaction=False)
        if creating:  # a new stream's owner must be alive at once
            # EXISTS then SET rather than SET ... GET, which needs Redis 6.2.
            pipe.exists(self.alive_key)
            pipe.set(self.alive_key, 1, px=self._alive_ms)
        for start in range(0, len(batch), FLUSH_STREAMS):
            keys: list[str] = []
            args: list[Any] = [self.running_ttl_s, self.ttl_s, self.instance]
            for local, final, end in batch[start : start + FLUSH_STREAMS]:
                stream_keys = StreamKeys.of(local.stream_id)
                keys += (stream_keys.events, stream_keys.meta)
                frames = local.frames[local.flushed : end]
                args += (local.flushed + 1, end, int(final), b"".join(frames), local.created)
            self.scripts.append(keys=keys, args=args, client=pipe)
        replies = pipe.execute()
        if creating:
            was_alive, _ = replies.pop(0), replies.pop(0)
            if not was_alive:
                self._resync()
        return [have for reply in replies for have in reply]

    def _lose_local(self) -> None:
        """The outage outlasted its budget: end this instance's running streams.

        Their terminal ``error`` event still goes to Redis if it comes back.
        """
        running = [local for local in self._local.values() if not local.finished]
        log.error("redis store: ending %d running stream(s): store_unavailable", len(running))
        for local in running:
            local.request_cancel("store_unavailable")

    def _drop_expired_unflushed(self) -> None:
        """Forget finished streams Redis would have expired by now (bounds memory
        while Redis stays away); their readers here had every event."""
        now = time.monotonic()
        for stream_id, local in list(self._local.items()):
            if local.finished and not local.readers and now - local.ended_at > self.ttl_s:
                self._local.pop(stream_id, None)
                self._dirty.pop(stream_id, None)

    # -- cancelling -----------------------------------------------------------

    def cancel(self, stream_id: str, reason: str) -> bool:
        """Stop a stream wherever it runs. :returns: False if it had ended.

        :raises NotFound: unknown or expired stream.
        """
        local = self._local.get(stream_id)
        if local is not None:
            if local.finished:
                return False
            local.request_cancel(reason)
            return True
        with _unavailable_on_error():
            owner = self.scripts.cancel(keys=[StreamKeys.of(stream_id).meta], args=[reason])
        if owner == -2:
            raise NotFound("No such stream (unknown id, or it expired).")
        if owner == -1:
            return False
        control = InstanceKeys.of(owner if isinstance(owner, bytes) else str(owner)).control
        with _unavailable_on_error():
            self.client.xadd(
                control,
                {"op": "cancel", "id": stream_id, "reason": reason},
                maxlen=1000,
                approximate=True,
            )
            self.client.expire(control, self.running_ttl_s)
        return True

    # -- reading ------------------------------------------------------------

    def status(self, stream_id: str) -> tuple[int, bool]:
        """``(highest id a reader may hold, finished)``.

        The owner serves its own readers before its batch reaches Redis, so
        while a stream runs elsewhere a reader may legitimately hold an id
        Redis has not seen yet: any id up to ``max_events`` is then accepted
        (the reader simply waits for what follows it). Once finished, Redis
        has every event and the bound is exact.

        :raises NotFound: unknown or expired.
        """
        local = self._local.get(stream_id)
        if local is not None:
            return len(local.frames), local.finished
        mirror = self._mirrors.get(stream_id)
        if mirror is not None:  # followed here already: no need to ask Redis (or wait for it)
            return (len(mirror.frames), True) if mirror.finished else (self.max_events, False)
        with _unavailable_on_error():
            state, last = self.client.hmget(StreamKeys.of(stream_id).meta, ["state", "last"])
        if state is None:
            raise NotFound("No such stream (unknown id, or it expired).")
        if state == b"finished":
            return int(last or 0), True
        return self.max_events, False

    def open_reader(self, stream_id: str) -> Reader:
        self._start()
        buffer: ShippedStream | Mirror | None = self._local.get(stream_id)
        if buffer is None:
            buffer = self._mirrors.get(stream_id)
            if buffer is None:
                with _unavailable_on_error():
                    buffer = self._load_mirror(stream_id)
        buffer.readers += 1
        reader = Reader(self.instance, stream_id, buffer, self.release)
        if isinstance(buffer, ShippedStream):  # the owner counts its own readers
            buffer.ever_attached = True
            return reader
        self._readers[reader.member] = reader
        keys = StreamKeys.of(stream_id)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(keys.readers, {reader.member: time.time()})
            pipe.expire(keys.readers, self.running_ttl_s)
            self.scripts.mark(keys=[keys.meta], args=["attached", 1], client=pipe)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot record a reader's presence")
        return reader

    def _load_mirror(self, stream_id: str) -> Mirror:
        keys = StreamKeys.of(stream_id)
        state, owner = self.client.hmget(keys.meta, ["state", "owner"])
        if state is None:
            raise NotFound("No such stream (unknown id, or it expired).")
        if state == b"running" and self._writes.settled(self.liveness_s):
            self._interrupt_if_dead(stream_id, owner)
        entries: list[Any] = self.client.xrange(keys.events) or []
        mirror = Mirror(self.driver)
        mirror.extend_entries(entries)
        existing = self._mirrors.setdefault(stream_id, mirror)
        if existing is mirror and not mirror.finished:
            self._wake()
        return existing

    def _wake(self) -> None:
        # The multiplexer's XREAD is already blocking without this stream.
        self.client.xadd(self.control, {"op": "wake"}, maxlen=100, approximate=True)
        self.client.expire(self.control, self.running_ttl_s)

    def release(self, reader: Reader) -> None:
        """A reader closed (its ``close`` calls this once)."""
        self._readers.pop(reader.member, None)
        stream_id = reader.stream_id
        buffer = reader.buffer
        buffer.readers -= 1
        if isinstance(buffer, ShippedStream):
            if not buffer.readers:
                buffer.idle_since = time.monotonic()
                if buffer.in_redis:
                    self._local.pop(stream_id, None)
            return
        if not buffer.readers:
            self._mirrors.pop(stream_id, None)
        keys = StreamKeys.of(stream_id)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(keys.readers, reader.member)
            self.scripts.mark(keys=[keys.meta], args=["left_at", time.time()], client=pipe)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot record a reader leaving")

    def _multiplexer(self) -> None:
        last_control: str | None = None
        while not self._stopped:
            following: dict[str, str] = {}  # events key -> stream id
            try:
                if last_control is None:  # control entries from before we started are not ours
                    last_control = f"{int(self.blocking.time()[0]) * 1000}-0"
                wanted: dict[Any, Any] = {self.control: last_control}
                for stream_id, mirror in list(self._mirrors.items()):
                    if not mirror.finished:
                        events = StreamKeys.of(stream_id).events
                        following[events] = stream_id
                        wanted[events] = f"0-{len(mirror.frames)}"
                replies = self.blocking.xread(wanted, block=int(self.beat_s * 1000), count=1000)
            except redis.RedisError as exc:
                # Mirror readers keep their connection (heartbeats) and resume
                # where they were when Redis answers; only past the budget do
                # they get an ``error`` event.
                if self._reads.failed(exc):
                    self._lose_mirrors()
                self.driver.sleep(self._reads.delay())
                continue
            self._reads.ok()
            reply: Any
            for reply in replies or []:
                raw_key, entries = reply
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if key == self.control:
                    last_control = entries[-1][0].decode()
                    self._control(entries)
                elif key in following:
                    self._deliver(following[key], entries)

    def _control(self, entries: list[Any]) -> None:
        for _, fields in entries:
            if fields.get(b"op") == b"cancel":
                local = self._local.get(fields[b"id"].decode())
                if local is not None:
                    local.request_cancel(fields[b"reason"].decode())

    def _deliver(self, stream_id: str, entries: list[Any]) -> None:
        mirror = self._mirrors.get(stream_id)
        if mirror is not None:
            mirror.extend_entries(entries)

    def _lose_mirrors(self) -> None:
        log.error(
            "redis store: ending %d mirrored stream(s): store_unavailable", len(self._mirrors)
        )
        for stream_id, mirror in list(self._mirrors.items()):
            mirror.extend([_LOST], final=True)
            self._mirrors.pop(stream_id, None)

    # -- liveness and presence ------------------------------------------------

    def _keeper(self) -> None:
        last_beat = time.monotonic()
        while not self._stopped:
            self.driver.sleep(self.beat_s)
            late = time.monotonic() - last_beat - self.beat_s
            if late > self._writes.gap_s and not self._writes.down:  # our sightings went stale
                log.warning("redis store: beat %.1f s late (this process stalled)", late)
            now = time.time()
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.exists(self.alive_key)
                pipe.set(self.alive_key, 1, px=self._alive_ms)
                remote = list(self._readers.values())  # remote readers only
                for reader in remote:
                    pipe.zadd(StreamKeys.of(reader.stream_id).readers, {reader.member: now})
                was_alive = pipe.execute()[0]
            except redis.RedisError as exc:
                if self._writes.failed(exc):
                    self._lose_local()
                continue
            self._writes.ok()
            last_beat = time.monotonic()
            if not was_alive:
                self._resync()
            if self._writes.settled(self.liveness_s):
                self._check_owners()

    def _resync(self) -> None:
        """Our liveness key was gone: Redis lost its data, or we were away.

        Every stream this process still holds is checked, finished ones too
        (an empty batch answers where Redis is; a lost one is then rewritten
        from event 1), and the reader sets recreated by the beat get their TTL.
        """
        for local in list(self._local.values()):
            local.verify = True
            self.mark_dirty(local)
        remote = list(self._readers.values())
        if not remote:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for reader in remote:
                pipe.expire(StreamKeys.of(reader.stream_id).readers, self.running_ttl_s)
            pipe.execute()
        except redis.RedisError:
            log.warning("redis store: cannot set the TTL of reader sets")

    def _check_owners(self) -> None:
        """End mirrored streams whose owner is gone (its liveness key expired)."""
        following = [sid for sid, m in list(self._mirrors.items()) if not m.finished]
        if not following:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for stream_id in following:
                pipe.hget(StreamKeys.of(stream_id).meta, "owner")
            for stream_id, owner in zip(following, pipe.execute(), strict=True):
                self._interrupt_if_dead(stream_id, owner)
        except redis.RedisError:
            log.warning("redis store: cannot check the owners of followed streams")

    def _interrupt_if_dead(self, stream_id: str, owner: bytes | str | None) -> None:
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
        self.scripts.interrupt(
            keys=[keys.events, keys.meta, keys.readers, alive], args=[body, self.ttl_s]
        )

    def presence(self, stream_id: str) -> Presence:
        found = self.presence_many([stream_id])
        if stream_id not in found:
            raise NotFound("No such stream (unknown id, or it expired).")
        return found[stream_id]

    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]:
        """Cluster-wide reader presence: local readers first, Redis for the rest.

        A stream generated here with a reader here needs no Redis at all; the
        others are asked in one round trip. A remote reader counts while its
        last sighting is under ``stale_s`` old (at least the detach grace), and
        a stream's idle time runs from the last sighting of any reader (from
        its creation if none ever came). While Redis is failing, or right
        after a gap, remote presence is unknown and such streams are left out
        or reported attended: a missed beat is no evidence that a reader left.
        """
        found: dict[str, Presence] = {}
        remote: list[str] = []
        for stream_id in stream_ids:
            local = self._local.get(stream_id)
            if local is not None and local.readers:
                found[stream_id] = Presence(local.readers, True, 0.0)
            else:
                remote.append(stream_id)
        if not remote or self._writes.down:
            return found
        settled = self._writes.settled(self.liveness_s)
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for stream_id in remote:
            keys = StreamKeys.of(stream_id)
            pipe.zcount(keys.readers, now - self.stale_s, "+inf")
            pipe.zrevrange(keys.readers, 0, 0, withscores=True)
            pipe.hmget(keys.meta, ["attached", "left_at", "created"])
        try:
            replies = pipe.execute()
        except redis.RedisError:  # the beat notices the outage; nobody is judged now
            return found
        for index, stream_id in enumerate(remote):
            count, newest, (attached, left_at, created) = replies[3 * index : 3 * index + 3]
            if created is None:
                continue
            seen = max([float(left_at or 0)] + [score for _, score in newest])
            ever = attached is not None or seen > 0
            idle = max(0.0, now - (seen if ever else float(created)))
            local = self._local.get(stream_id)
            if local is not None and local.readers:  # one attached while Redis answered
                count, ever, idle = local.readers, True, 0.0
            elif local is not None and local.ever_attached:  # a local reader came and went
                local_idle = time.monotonic() - local.idle_since
                idle = min(idle, local_idle) if ever else local_idle
                ever = True
            if not settled and ever:
                count, idle = max(int(count), 1), 0.0
            found[stream_id] = Presence(int(count), ever, idle)
        return found

    def wake_all(self) -> None:
        """Wake every waiting reader of this process (shutdown)."""
        for buffer in [*self._local.values(), *self._mirrors.values()]:
            buffer.wake()

    def sweep(self) -> int:
        return 0  # Redis expires keys itself (every key has a TTL)

    def ping(self) -> bool:
        """Redis accepts a write (a reachable Redis at ``maxmemory`` refuses them)."""
        try:
            accepted = bool(self.client.set(self.me.probe, 1, px=10_000))
        except redis.RedisError:
            return False
        self._writes.ok()  # new streams are accepted at once, not at the next beat
        return accepted


@contextlib.contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """A Redis failure in a request becomes a 503 ``store_unavailable``."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable("The stream store is unreachable; try again shortly.") from exc
