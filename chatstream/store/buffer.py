"""One stream's events in this process: its frames, its readers' wake-up, its writer.

* :class:`FrameLog`: the frames, kept compactly in one buffer and an offset
  per frame. A token-sized SSE frame is ~50 bytes; as its own ``bytes``
  object in a list it costs ~50 more, and thousands of small long-lived
  objects fragment the allocator's arenas so that freed streams do not give
  memory back. Here a frame costs its bytes plus an 8-byte offset.
* :class:`EventBuffer`: a stream's frames and the wake-up of its waiting
  readers. A read returns at most :data:`READ_MAX_BYTES`, so a client that
  stops reading pins one pending write, never a whole stream; a released
  stream (expired) answers :data:`EXPIRED_FRAME`.
* :class:`OwnedStream` and :class:`OwnedWriter`: a stream generated in this
  process, with its cancel hooks and reader count, and the runner's handle
  on it. The memory store keeps one per stream; the Redis store one per
  stream its process generates.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import overload

from .. import sse
from ..concurrency import Driver
from . import Chunk
from . import Presence

#: What the memory store counts per frame beyond its bytes (its offset);
#: ``MAX_STORE_MB`` is checked against :func:`stored_size`.
FRAME_OFFSET_BYTES = 8

#: At most this much is returned by one read (but always one whole frame): a
#: client that stops reading holds one pending write, not its whole stream.
READ_MAX_BYTES = 64 * 1024

#: What a reader still attached to an expired (or evicted) stream reads last.
#: No id: its ``Last-Event-ID`` stays that of the last event it really got.
EXPIRED_FRAME = sse.encode(
    '{"code":"stream_expired","message":"This answer is no longer kept on the server."}',
    event="error",
)


class FrameLog(Sequence[bytes]):
    """The frames of one stream: one growing buffer and the end offset of each frame.

    A frame costs its bytes plus an 8-byte offset, instead of a ``bytes``
    object and a list slot each (~50 more bytes for a token, and small
    long-lived objects that fragment the allocator's arenas). Readers use
    :meth:`span`, which copies one slice; it is also a read-only sequence of
    frames, equal to the list of the same frames.

    One writer appends, readers may read concurrently (threads too): the
    bytes go in before their offset, and a reader only looks up to the count
    it saw, so it never sees a partial frame.
    """

    __slots__ = ("data", "ends")

    def __init__(self, frames: Iterable[bytes] = ()) -> None:
        self.data = bytearray()
        self.ends = array("Q", [0])
        self.extend(frames)

    def extend(self, frames: Iterable[bytes]) -> None:
        data, ends = self.data, self.ends
        for frame in frames:
            data += frame
            ends.append(len(data))

    def __len__(self) -> int:
        return len(self.ends) - 1

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("frame index out of range")
        return bytes(self.data[self.ends[index] : self.ends[index + 1]])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameLog | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def span(self, after: int, count: int, max_bytes: int) -> tuple[bytes, int]:
        """Frames ``after+1..`` up to ``count``, stopping at the first that reaches ``max_bytes``.

        :returns: their bytes and the id of the last one.
        """
        ends = self.ends
        start = ends[after]
        end = bisect_left(ends, start + max_bytes, after + 1, count)
        return bytes(self.data[start : ends[end]]), end


def stored_size(frames: FrameLog) -> int:
    """What the memory store counts for these frames (bytes + an offset each)."""
    return len(frames.data) + FRAME_OFFSET_BYTES * len(frames)


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

    def attach(self) -> None:
        """Count a reader in (for :class:`~chatstream.store.Presence`)."""
        self.readers += 1
        self.ever_attached = True

    def detach(self) -> None:
        """Count a reader out (once per :meth:`attach`); the last one starts the idle clock."""
        self.readers -= 1
        if self.readers == 0:
            self.idle_since = time.monotonic()

    def presence(self) -> Presence:
        """Who reads this stream now (idle time counted since the last detach)."""
        idle = 0.0 if self.readers else time.monotonic() - self.idle_since
        return Presence(self.readers, self.ever_attached, idle)


#: Told of each batch a writer appended: ``on_append(stream, frames)``.
OnAppend = Callable[[OwnedStream, list[bytes]], None]


class OwnedWriter:
    """The runner's handle on an :class:`OwnedStream` (the memory store's writer).

    :param on_append: called after each batch that was appended (the memory
        store counts the bytes it holds); not after a stream has ended.

    The Redis store subclasses it to also ship each batch to Redis.
    """

    __slots__ = ("_stream", "_on_append", "stream_id")

    def __init__(self, stream: OwnedStream, on_append: OnAppend | None = None) -> None:
        self._stream = stream
        self._on_append = on_append
        self.stream_id = stream.stream_id

    def append(self, frames: list[bytes], *, final: bool = False) -> None:
        if self._stream.extend(frames, final=final) and self._on_append is not None:
            self._on_append(self._stream, frames)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        self._stream.callbacks.append(callback)

    @property
    def cancel_reason(self) -> str | None:
        return self._stream.cancel_reason
