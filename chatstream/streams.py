"""The stream store: where generated events wait for their readers.

One writer per stream (the generation runner) appends events already framed
as SSE bytes, so replay and any number of readers cost no re-encoding. A
reader asks for "everything after event N" and gets the pending frames joined
into one write, waiting at most ``timeout`` seconds (so the SSE view can send
a heartbeat and notice a disconnect).

Event ids are the integers 1, 2, 3, ... in order. A reader's position is the
last id it has (0: none yet), which is exactly the browser's ``Last-Event-ID``.

:class:`MemoryStreamStore` keeps everything in this process (the default,
one worker). A Redis implementation with the same interface shares streams
across workers and machines.

Memory, and what bounds it:

* A stream keeps its frames in one growing buffer and an array of offsets
  (:class:`FrameLog`): about half the memory of a ``bytes`` object per
  token-sized frame, and no small long-lived objects to fragment the
  allocator's arenas.
* Ending a stream drops its cancel callbacks, which point back at the
  generation: a finished stream is freed by reference counting, without
  waiting for the cycle collector.
* The memory store sweeps expired streams on a timer (every ``SWEEP_S``
  while it holds any), and keeps at most ``MAX_STORE_MB`` of events per
  worker: past it, the oldest *finished* streams go first, and while running
  streams alone fill it, new streams are refused (``503 store_full``).
* A read returns at most :data:`READ_MAX_BYTES`, so a client that stops
  reading pins one pending write, never a whole stream; when its stream
  expires, the frames are released even though the reader is still
  attached, and it reads one ``error`` event ``stream_expired``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import secrets
import threading
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple
from typing import Protocol
from typing import overload

from . import sse
from .concurrency import Driver
from .errors import NotFound
from .errors import Overloaded

log = logging.getLogger(__name__)

#: ``secrets.token_urlsafe(24)`` gives 192 random bits in 32 URL-safe chars.
ID_BYTES = 24


#: At most this much is returned by one read (but always one whole frame): a
#: client that stops reading holds one pending write, not its whole stream.
READ_MAX_BYTES = 64 * 1024

#: What the store counts per frame beyond its bytes (a packed stream keeps an
#: 8-byte offset per frame); ``MAX_STORE_MB`` is checked against this count.
FRAME_OFFSET_BYTES = 8

#: After the sweeps have freed this much (or emptied the store), hand free
#: heap pages back to the OS.
TRIM_AFTER_BYTES = 64 * 2**20

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


#: The frames of a released stream (expired or evicted).
RELEASED = FrameLog()


def stored_size(frames: FrameLog) -> int:
    """What the memory store counts for these frames (bytes + an offset each)."""
    return len(frames.data) + FRAME_OFFSET_BYTES * len(frames)


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


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or a no-op where there is none (musl, macOS).

    Hand-written because nothing else does it: a freed 1 MB stream buffer
    sits in the middle of glibc's heap, and glibc only returns the heap's top
    to the OS. Measured with 100 streams x 20,000 tokens per round (one
    process, the store alone): RSS after the sweep stayed 5-37 MB above the
    baseline until ``malloc_trim`` returned all of it; the call took 1-10 ms.
    """
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return lambda: None
    return lambda: trim(0) and None


class _MemoryWriter(OwnedWriter):
    """The memory store's writer: also counts the bytes the store holds."""

    def __init__(self, stream: OwnedStream, store: MemoryStreamStore) -> None:
        super().__init__(stream)
        self._store = store

    def append(self, frames: list[bytes], *, final: bool = False) -> None:
        stream = self._stream
        if stream.extend(frames, final=final):
            self._store.added(stream, sum(map(len, frames)) + FRAME_OFFSET_BYTES * len(frames))


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
    :param sweep_s: how late after its TTL at most an expired stream is
        dropped (a timer task runs while the store holds streams).
    :param max_bytes: events kept at most (:func:`stored_size`); past it the
        oldest finished streams are dropped, then new streams refused.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        ttl_s: float,
        sweep_s: float = 1.0,
        max_bytes: int | None = None,
    ) -> None:
        self.driver = driver
        self.ttl_s = ttl_s
        self.sweep_s = sweep_s
        self.max_bytes = max_bytes
        #: What the streams hold now, in :func:`stored_size` terms.
        self.held_bytes = 0
        #: Streams dropped before their TTL to stay under ``max_bytes``.
        self.evicted = 0
        self._streams: dict[str, OwnedStream] = {}
        #: Finished streams in the order they ended: the oldest first.
        self._finished: OrderedDict[str, OwnedStream] = OrderedDict()
        self._sweeper_lock = threading.Lock()
        self._sweeper_alive = False
        self._freed_since_trim = 0
        self._trim = _malloc_trim()

    def _get(self, stream_id: str) -> OwnedStream:
        stream = self._streams.get(stream_id)
        if stream is None or (stream.finished and time.monotonic() - stream.ended_at > self.ttl_s):
            raise NotFound("No such stream (unknown id, or it expired).")
        return stream

    def create(self) -> OwnedWriter:
        """A new stream and its writer.

        :raises Overloaded: ``store_full``: running streams alone hold ``max_bytes``.
        """
        if self.max_bytes is not None and self.held_bytes >= self.max_bytes:
            self._evict(self.max_bytes - 1)  # make room: strictly under the cap
            if self.held_bytes >= self.max_bytes:
                raise Overloaded(
                    "This server holds as many answers as it may; try again shortly.",
                    code="store_full",
                )
        stream = OwnedStream(new_stream_id(), self.driver)
        self._streams[stream.stream_id] = stream
        self._ensure_sweeper()
        return _MemoryWriter(stream, self)

    def added(self, stream: OwnedStream, size: int) -> None:
        """Count frames a writer appended to ``stream`` (and note its end)."""
        self.held_bytes += size
        if stream.finished:
            self._finished[stream.stream_id] = stream
        if self.max_bytes is not None and self.held_bytes > self.max_bytes:
            self._evict(self.max_bytes)

    def _evict(self, limit: int) -> None:
        """Drop the oldest finished streams until at most ``limit`` bytes are held."""
        dropped = 0
        while self.held_bytes > limit and self._finished:
            _, stream = self._finished.popitem(last=False)
            self._drop(stream)
            dropped += 1
        if dropped:
            self.evicted += dropped
            log.warning(
                "memory store full: dropped %d finished stream(s) before their TTL "
                "(CHATSTREAM_MAX_STORE_MB)",
                dropped,
            )

    def _drop(self, stream: OwnedStream) -> None:
        self._streams.pop(stream.stream_id, None)
        size = stored_size(stream.frames)
        self.held_bytes -= size
        self._freed_since_trim += size
        stream.release()

    def _ensure_sweeper(self) -> None:
        with self._sweeper_lock:
            if self._sweeper_alive:
                return
            self._sweeper_alive = True
        self.driver.spawn(self._sweeper)

    def _sweeper(self) -> None:
        # A timer, not a sweep on create(): with no new stream, expired ones
        # (and what their idle readers pin) would stay forever. It sleeps
        # until the oldest finished stream expires (nothing expires sooner:
        # a stream that ends later expires later), at least ``sweep_s``.
        while True:
            self.driver.sleep(max(self.sweep_s, self._next_expiry() - time.monotonic()))
            try:
                self.sweep()
                # After every TRIM_AFTER_BYTES freed, and once the store is empty.
                if self._freed_since_trim >= TRIM_AFTER_BYTES or (
                    self._freed_since_trim and not self._streams
                ):
                    self._freed_since_trim = 0
                    self._trim()
            except Exception:  # never lose the timer to one bad sweep
                log.exception("memory store: sweep failed")
            with self._sweeper_lock:
                if not self._streams:
                    self._sweeper_alive = False
                    return

    def _next_expiry(self) -> float:
        for stream in self._finished.values():  # the oldest only
            return stream.ended_at + self.ttl_s
        return time.monotonic() + self.ttl_s

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
        """Drop finished streams older than the TTL, oldest first. :returns: how many."""
        deadline = time.monotonic() - self.ttl_s
        dropped = 0
        while self._finished:
            stream_id = next(iter(self._finished))  # O(1) on an OrderedDict
            stream = self._finished[stream_id]
            if stream.ended_at >= deadline:
                break
            del self._finished[stream_id]
            self._drop(stream)
            dropped += 1
        return dropped

    def wake_all(self) -> None:
        """Wake every waiting reader (shutdown)."""
        for stream in list(self._streams.values()):
            stream.wake()

    def ping(self) -> bool:
        return True
