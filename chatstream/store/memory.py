"""The in-memory stream store (one worker), and what bounds its memory.

* A stream keeps its frames in one growing buffer and an array of offsets
  (:class:`~chatstream.store.buffer.FrameLog`): about half the memory of a
  ``bytes`` object per token-sized frame, and no small long-lived objects to
  fragment the allocator's arenas.
* Ending a stream drops its cancel callbacks, which point back at the
  generation: a finished stream is freed by reference counting, without
  waiting for the cycle collector.
* The store sweeps expired streams on a timer (at most ``SWEEP_S`` after
  they expire, while it holds any; no new traffic is needed) and hands freed
  heap back to the OS (:mod:`chatstream.store.sweeper`). It keeps at most
  ``MAX_STORE_MB`` of events per worker: past it, the oldest *finished*
  streams go first, and while running streams alone fill it, new streams
  are refused (``503 store_full``).
* A read returns at most :data:`~chatstream.store.buffer.READ_MAX_BYTES`, so
  a client that stops reading pins one pending write, never a whole stream; when its stream
  expires, the frames are released even though the reader is still
  attached, and it reads one ``error`` event ``stream_expired``.

Config keys: ``STREAM_TTL_S``, ``SWEEP_S``, ``MAX_STORE_MB``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from contextlib import suppress

from ..concurrency import Driver
from ..errors import NotFound
from ..errors import Overloaded
from . import Presence
from . import new_stream_id
from .buffer import FRAME_OFFSET_BYTES
from .buffer import OwnedStream
from .buffer import OwnedWriter
from .buffer import stored_size
from .sweeper import Sweeper

log = logging.getLogger(__name__)


class _MemoryReader:
    """One reader of an :class:`OwnedStream`, counted in until it closes."""

    __slots__ = ("_stream", "_closed", "read")

    def __init__(self, stream: OwnedStream) -> None:
        self._stream = stream
        self._closed = False
        self.read = stream.read
        stream.attach()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.detach()


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
        self.max_bytes = max_bytes
        #: What the streams hold now, in :func:`stored_size` terms.
        self.held_bytes = 0
        #: Streams dropped before their TTL to stay under ``max_bytes``.
        self.evicted = 0
        self._streams: dict[str, OwnedStream] = {}
        #: Finished streams in the order they ended: the oldest first.
        self._finished: OrderedDict[str, OwnedStream] = OrderedDict()
        #: The timer that drops expired streams while there are any.
        self.sweeper = Sweeper(
            driver,
            sweep_s,
            sweep=self.sweep,
            next_expiry=self._next_expiry,
            empty=lambda: not self._streams,
        )

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
        self.sweeper.ensure_running()
        return OwnedWriter(stream, on_append=self._added)

    def _added(self, stream: OwnedStream, frames: list[bytes]) -> None:
        """Count frames a writer appended to ``stream`` (and note its end)."""
        self.held_bytes += sum(map(len, frames)) + FRAME_OFFSET_BYTES * len(frames)
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
        self.sweeper.freed(size)
        stream.release()

    def _next_expiry(self) -> float:
        """When the oldest finished stream expires (nothing expires sooner)."""
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
        """Who reads the stream now. :raises NotFound: unknown or expired."""
        return self._get(stream_id).presence()

    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]:
        """:meth:`presence` of several streams (unknown ones are left out)."""
        found = {}
        for stream_id in stream_ids:
            with suppress(NotFound):
                found[stream_id] = self.presence(stream_id)
        return found

    def sweep(self) -> int:
        """Drop finished streams older than the TTL, oldest first. :returns: how many."""
        deadline = time.monotonic() - self.ttl_s
        dropped = 0
        while self._finished:
            # Pop, then put back if not expired: each step is one atomic
            # OrderedDict call, so a writer thread (threading driver) adding a
            # finished stream meanwhile cannot break an iteration.
            stream_id, stream = self._finished.popitem(last=False)
            if stream.ended_at >= deadline:
                self._finished[stream_id] = stream
                self._finished.move_to_end(stream_id, last=False)
                break
            self._drop(stream)
            dropped += 1
        return dropped

    def wake_all(self) -> None:
        """Wake every waiting reader (shutdown)."""
        for stream in list(self._streams.values()):
            stream.wake()

    def ping(self) -> bool:
        return True
