"""Following streams generated elsewhere: mirrors, the multiplexer, the control stream.

A reader here of a stream generated on another instance reads a local
:class:`~.copies.Mirror`: one ``XRANGE`` to catch up (:meth:`Multiplexer.load`),
then one blocking ``XREAD`` per worker that multiplexes every stream its
readers follow, so Redis connections stay flat however many streams are open.

The same ``XREAD`` watches this instance's control stream, where other
instances post cancel requests for the streams generated here (and new
readers here post a wake-up, so the ``XREAD`` starts following their stream).

While reads fail, mirror readers keep their connection (heartbeats) and resume
where they were when Redis answers; only an outage past the budget ends the
mirrors with an ``error`` event ``store_unavailable``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from ... import sse
from ...errors import NotFound
from .copies import Mirror
from .keys import InstanceKeys
from .keys import StreamKeys
from .liveness import interrupt_if_dead
from .outage import OutageTracker
from .state import Shared

__all__ = ["ControlStream", "Multiplexer"]

log = logging.getLogger(__name__)

_LOST = sse.encode_json(  # id-less: a later resume keeps the last real id
    {"code": "store_unavailable", "message": "The stream store became unreachable; retry."},
    event="error",
)


class ControlStream:
    """Posting to instances' control streams, and obeying this instance's."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.key = shared.me.control

    def cancel_elsewhere(self, stream_id: str, reason: str) -> bool:
        """Note the cancel in the stream's meta and ask its owner to stop it.

        :returns: False if the stream had ended.
        :raises NotFound: unknown or expired stream.
        :raises redis.RedisError: Redis did not answer.
        """
        shared = self._shared
        owner = shared.scripts.cancel(keys=[StreamKeys.of(stream_id).meta], args=[reason])
        if owner == -2:
            raise NotFound("No such stream (unknown id, or it expired).")
        if owner == -1:
            return False
        key = InstanceKeys.of(owner if isinstance(owner, bytes) else str(owner)).control
        shared.client.xadd(
            key, {"op": "cancel", "id": stream_id, "reason": reason}, maxlen=1000, approximate=True
        )
        shared.client.expire(key, shared.running_ttl_s)
        return True

    def post_wake(self) -> None:
        """Wake this instance's ``XREAD`` (it is blocking without a new stream)."""
        client = self._shared.client
        client.xadd(self.key, {"op": "wake"}, maxlen=100, approximate=True)
        client.expire(self.key, self._shared.running_ttl_s)

    def obey(self, entries: list[Any]) -> None:
        """Carry out the cancel requests among control entries."""
        for _, fields in entries:
            if fields.get(b"op") == b"cancel":
                stream = self._shared.owned.get(fields[b"id"].decode())
                if stream is not None:
                    stream.request_cancel(fields[b"reason"].decode())


class Multiplexer:
    """One blocking ``XREAD`` feeding every mirror of this instance.

    :param blocking: a client of its own (single connection) for the ``XREAD``.
    :param reads: failures of that read.
    """

    def __init__(
        self, shared: Shared, blocking: redis.Redis, control: ControlStream, reads: OutageTracker
    ) -> None:
        self._shared = shared
        self._blocking = blocking
        self._control = control
        self._reads = reads

    def load(self, stream_id: str) -> Mirror:
        """Catch up with a stream from Redis and follow it from now on.

        :raises NotFound: unknown or expired.
        :raises redis.RedisError: Redis did not answer.
        """
        shared = self._shared
        keys = StreamKeys.of(stream_id)
        state, owner = shared.client.hmget(keys.meta, ["state", "owner"])
        if state is None:
            raise NotFound("No such stream (unknown id, or it expired).")
        if state == b"running" and shared.writes.settled(shared.liveness_s):
            interrupt_if_dead(shared, stream_id, owner)
        entries: list[Any] = shared.client.xrange(keys.events) or []
        mirror = Mirror(shared.driver)
        mirror.extend_entries(entries)
        existing = shared.mirrors.setdefault(stream_id, mirror)
        if existing is mirror and not mirror.finished:
            self._control.post_wake()
        return existing

    def run(self) -> None:
        """The multiplexer task: read, deliver, repeat until stopped."""
        shared = self._shared
        last_control: str | None = None
        while not shared.stopped:
            following: dict[str, str] = {}  # events key -> stream id
            try:
                if last_control is None:  # control entries from before we started are not ours
                    last_control = f"{int(self._blocking.time()[0]) * 1000}-0"
                wanted: dict[Any, Any] = {self._control.key: last_control}
                for stream_id, mirror in list(shared.mirrors.items()):
                    if not mirror.finished:
                        events = StreamKeys.of(stream_id).events
                        following[events] = stream_id
                        wanted[events] = f"0-{len(mirror.frames)}"
                replies = self._blocking.xread(wanted, block=int(shared.beat_s * 1000), count=1000)
            except redis.RedisError as exc:
                if self._reads.failed(exc):
                    self._lose_mirrors()
                shared.driver.sleep(self._reads.delay())
                continue
            self._reads.ok()
            reply: Any
            for reply in replies or []:
                raw_key, entries = reply
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if key == self._control.key:
                    last_control = entries[-1][0].decode()
                    self._control.obey(entries)
                elif key in following:
                    self._deliver(following[key], entries)

    def _deliver(self, stream_id: str, entries: list[Any]) -> None:
        mirror = self._shared.mirrors.get(stream_id)
        if mirror is not None:
            mirror.extend_entries(entries)

    def _lose_mirrors(self) -> None:
        mirrors = self._shared.mirrors
        log.error("redis store: ending %d mirrored stream(s): store_unavailable", len(mirrors))
        for stream_id, mirror in list(mirrors.items()):
            mirror.extend([_LOST], final=True)
            mirrors.pop(stream_id, None)
