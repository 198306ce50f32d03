"""The stream store: where generated events wait for their readers.

One writer per stream (the generation runner) appends events already framed
as SSE bytes, so replay and any number of readers cost no re-encoding. A
reader asks for "everything after event N" and gets the pending frames joined
into one write, waiting at most ``timeout`` seconds (so the SSE view can send
a heartbeat and notice a disconnect).

Event ids are the integers 1, 2, 3, ... in order. A reader's position is the
last id it has (0: none yet): the ``<seq>`` of the browser's ``Last-Event-ID``
(``<tag>.<seq>`` on the wire, :mod:`chatstream.event_ids`).

:class:`MemoryStreamStore` keeps everything in this process (the default,
one worker). A Redis implementation with the same interface shares streams
across workers and machines.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from typing import Protocol

from .concurrency import Driver
from .errors import NotFound

#: ``secrets.token_urlsafe(24)`` gives 192 random bits in 32 URL-safe chars.
ID_BYTES = 24


def new_stream_id() -> str:
    """An unguessable stream id: whoever holds it may read and cancel."""
    return secrets.token_urlsafe(ID_BYTES)


class Chunk(NamedTuple):
    """What one read returns (a tuple: one is made per read, on the hot path).

    :param data: the frames after the reader's position, joined (maybe empty).
    :param last_id: the id of the last frame in ``data`` (or the position).
    :param finished: the stream has ended and ``data`` holds its last frame.
    """

    data: bytes
    last_id: int
    finished: bool


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is reading a running stream, for the attach/detach grace periods.

    :param readers: readers attached right now.
    :param ever_attached: some reader attached at least once.
    :param idle_s: seconds with no reader (since creation or the last detach).
    """

    readers: int
    ever_attached: bool
    idle_s: float


class StreamWriter(Protocol):
    """The runner's handle on one stream; the only thing that appends."""

    stream_id: str

    def append(self, frames: list[bytes], *, final: bool = False) -> None: ...
    def on_cancel(self, callback: Callable[[str], None]) -> None: ...
    @property
    def cancel_reason(self) -> str | None: ...


class StreamReader(Protocol):
    def read(self, after: int, timeout: float | None) -> Chunk: ...
    def close(self) -> None: ...


class StreamStore(Protocol):
    """The interface every store implements (memory, Redis)."""

    def create(self) -> StreamWriter: ...
    def status(self, stream_id: str) -> tuple[int, bool]: ...
    def open_reader(self, stream_id: str) -> StreamReader: ...
    def cancel(self, stream_id: str, reason: str) -> bool: ...
    def presence(self, stream_id: str) -> Presence: ...
    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]: ...
    def sweep(self) -> int: ...
    def wake_all(self) -> None: ...
    def ping(self) -> bool: ...


class EventBuffer:
    """Framed events of one stream in this process, and their readers' wake-up.

    The memory store keeps one per stream; the Redis store keeps one per
    stream that this process writes or reads (a local mirror). One writer
    calls :meth:`extend`; any number of readers call :meth:`read`.
    """

    __slots__ = ("frames", "finished", "ended_at", "changed", "waiting", "_driver")

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.frames: list[bytes] = []
        self.finished = False
        self.ended_at = 0.0
        self.changed = driver.event()
        self.waiting = False

    def extend(self, frames: list[bytes], *, final: bool = False) -> bool:
        """Append frames (and end the stream). :returns: False if already ended."""
        if self.finished:
            return False
        self.frames.extend(frames)
        if final:
            self.finished = True
            self.ended_at = time.monotonic()
        # Wake every waiting reader once for this batch, and only if one waits
        # (no allocation per token otherwise). Order matters: the writer
        # appends, then looks at ``waiting``; a reader sets ``waiting`` and
        # takes the event, then looks at the frames. Either the reader sees
        # the new frames or the writer sees it waiting: no wake-up is lost.
        if self.waiting:
            self.waiting = False
            changed, self.changed = self.changed, self._driver.event()
            changed.set()
        return True

    def wake(self) -> None:
        """Wake waiting readers with no new frame (they re-check their state)."""
        if self.waiting:
            self.waiting = False
            changed, self.changed = self.changed, self._driver.event()
            changed.set()

    def take(self, after: int) -> Chunk:
        """The frames after event ``after``, without waiting."""
        # Read ``finished`` before the length: the writer appends the final
        # frame before setting it, so "finished" always covers what we join.
        finished = self.finished
        frames = self.frames
        count = len(frames)
        if after < count:
            return Chunk(b"".join(frames[after:count]), count, finished)
        return Chunk(b"", after, finished)

    def read(self, after: int, timeout: float | None) -> Chunk:
        """The frames after event ``after``, waiting up to ``timeout`` for some.

        With ``timeout=None`` it waits until a frame comes or :meth:`wake`.
        """
        chunk = self.take(after)
        if chunk.data or chunk.finished:
            return chunk
        self.waiting = True
        changed = self.changed
        chunk = self.take(after)  # a frame may have landed before ``waiting``
        if chunk.data or chunk.finished:
            return chunk
        changed.wait(timeout)
        return self.take(after)


class OwnedStream(EventBuffer):
    """A stream generated in this process: its events, cancel hooks and readers.

    The memory store keeps one per stream; the Redis store one per stream its
    process generates.
    """

    __slots__ = (
        "stream_id",
        "cancel_reason",
        "callbacks",
        "readers",
        "ever_attached",
        "idle_since",
    )

    def __init__(self, stream_id: str, driver: Driver) -> None:
        super().__init__(driver)
        self.stream_id = stream_id
        self.cancel_reason: str | None = None
        self.callbacks: list[Callable[[str], None]] = []
        self.readers = 0
        self.ever_attached = False
        self.idle_since = time.monotonic()

    def request_cancel(self, reason: str) -> None:
        """Ask the writer to stop (once; a finished stream ignores it)."""
        if self.cancel_reason is None and not self.finished:
            self.cancel_reason = reason
            for callback in self.callbacks:
                callback(reason)


class OwnedWriter:
    """The runner's handle on an :class:`OwnedStream` (the memory store's writer).

    The Redis store subclasses it to also ship each batch to Redis.
    """

    def __init__(self, stream: OwnedStream) -> None:
        self._stream = stream
        self.stream_id = stream.stream_id

    def append(self, frames: list[bytes], *, final: bool = False) -> None:
        self._stream.extend(frames, final=final)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        self._stream.callbacks.append(callback)

    @property
    def cancel_reason(self) -> str | None:
        return self._stream.cancel_reason


class _MemoryReader:
    def __init__(self, stream: OwnedStream) -> None:
        self._stream = stream
        self._closed = False
        self.read = stream.read
        stream.readers += 1
        stream.ever_attached = True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.readers -= 1
            if self._stream.readers == 0:
                self._stream.idle_since = time.monotonic()


class MemoryStreamStore:
    """Streams kept in this process.

    :param driver: concurrency primitives (gevent or threads).
    :param ttl_s: how long a finished stream stays readable.
    """

    def __init__(self, driver: Driver, *, ttl_s: float) -> None:
        self.driver = driver
        self.ttl_s = ttl_s
        self._streams: dict[str, OwnedStream] = {}
        self._next_sweep = 0.0

    def _get(self, stream_id: str) -> OwnedStream:
        stream = self._streams.get(stream_id)
        if stream is None or (stream.finished and time.monotonic() - stream.ended_at > self.ttl_s):
            raise NotFound("No such stream (unknown id, or it expired).")
        return stream

    def create(self) -> OwnedWriter:
        now = time.monotonic()
        if now >= self._next_sweep:  # amortised: at most one full scan a second
            self._next_sweep = now + 1.0
            self.sweep()
        stream = OwnedStream(new_stream_id(), self.driver)
        self._streams[stream.stream_id] = stream
        return OwnedWriter(stream)

    def status(self, stream_id: str) -> tuple[int, bool]:
        """``(highest id a reader may hold, finished)``: here, the last event id.

        :raises NotFound: unknown or expired.
        """
        stream = self._get(stream_id)
        return len(stream.frames), stream.finished

    def open_reader(self, stream_id: str) -> _MemoryReader:
        return _MemoryReader(self._get(stream_id))

    def cancel(self, stream_id: str, reason: str) -> bool:
        """Ask the writer to stop. :returns: False if it had already ended."""
        stream = self._get(stream_id)
        stream.request_cancel(reason)
        return not stream.finished

    def presence(self, stream_id: str) -> Presence:
        stream = self._get(stream_id)
        idle = 0.0 if stream.readers else time.monotonic() - stream.idle_since
        return Presence(stream.readers, stream.ever_attached, idle)

    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]:
        """:meth:`presence` of several streams (unknown ones are left out)."""
        found = {}
        for stream_id in stream_ids:
            try:
                found[stream_id] = self.presence(stream_id)
            except NotFound:
                continue
        return found

    def sweep(self) -> int:
        """Drop finished streams older than the TTL. :returns: how many."""
        now = time.monotonic()
        expired = [
            sid for sid, s in self._streams.items() if s.finished and now - s.ended_at > self.ttl_s
        ]
        for sid in expired:
            del self._streams[sid]
        return len(expired)

    def wake_all(self) -> None:
        """Wake every waiting reader (shutdown)."""
        for stream in list(self._streams.values()):
            stream.wake()

    def ping(self) -> bool:
        return True
