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

A stream's frames live in a :class:`~chatstream.framelog.FrameLog` (one
buffer, an offset per frame). A read returns at most :data:`READ_MAX_BYTES`,
so a client that stops reading pins one pending write, never a whole
stream; a released stream (expired) answers :data:`EXPIRED_FRAME`.
:class:`~chatstream.memory_store.MemoryStreamStore` lives in its own module
(re-exported here).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from typing import Protocol

from . import sse
from .concurrency import Driver
from .framelog import FrameLog

#: ``secrets.token_urlsafe(24)`` gives 192 random bits in 32 URL-safe chars.
ID_BYTES = 24


#: At most this much is returned by one read (but always one whole frame): a
#: client that stops reading holds one pending write, not its whole stream.
READ_MAX_BYTES = 64 * 1024

#: What a reader still attached to an expired (or evicted) stream reads last.
#: No id: its ``Last-Event-ID`` stays that of the last event it really got.
EXPIRED_FRAME = sse.encode(
    '{"code":"stream_expired","message":"This answer is no longer kept on the server."}',
    event="error",
)


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


#: The frames of a released stream (expired or evicted).
RELEASED = FrameLog()


class EventBuffer:
    """Framed events of one stream in this process, and their readers' wake-up.

    The memory store keeps one per stream; the Redis store keeps one per
    stream that this process writes or reads (a local mirror). One writer
    calls :meth:`extend`; any number of readers call :meth:`read`. The
    frames are kept in a :class:`FrameLog`.
    """

    __slots__ = ("frames", "finished", "ended_at", "changed", "waiting", "_driver")

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.frames = FrameLog()
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
            self._ended()
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

    def _ended(self) -> None:
        """The stream has just ended (a hook for subclasses)."""

    def release(self) -> None:
        """Forget the frames (the stream expired): attached readers get :data:`EXPIRED_FRAME`."""
        self.frames = RELEASED
        self.finished = True
        self.wake()

    def wake(self) -> None:
        """Wake waiting readers with no new frame (they re-check their state)."""
        if self.waiting:
            self.waiting = False
            changed, self.changed = self.changed, self._driver.event()
            changed.set()

    def take(self, after: int) -> Chunk:
        """The frames after event ``after`` (up to :data:`READ_MAX_BYTES`), without waiting."""
        # Read ``finished`` before the length: the writer appends the final
        # frame before setting it, so "finished" always covers what we join.
        finished = self.finished
        frames = self.frames
        count = len(frames)
        if after < count:
            data, end = frames.span(after, count, READ_MAX_BYTES)
            return Chunk(data, end, finished and end == count)
        if frames is RELEASED:
            return Chunk(EXPIRED_FRAME, after, True)
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

    def _ended(self) -> None:
        super()._ended()
        # The callbacks close the generation's adapter, and the generation
        # holds this stream's writer: a cycle. Nothing is left to cancel.
        self.callbacks = []

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

    __slots__ = ("_stream", "stream_id")

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


# Re-exported: the memory store was defined here, and callers import it from here.
from .memory_store import MemoryStreamStore  # noqa: E402

__all__ = [
    "Chunk",
    "EventBuffer",
    "EXPIRED_FRAME",
    "FrameLog",
    "MemoryStreamStore",
    "OwnedStream",
    "OwnedWriter",
    "Presence",
    "READ_MAX_BYTES",
    "RELEASED",
    "StreamReader",
    "StreamStore",
    "StreamWriter",
    "new_stream_id",
]
