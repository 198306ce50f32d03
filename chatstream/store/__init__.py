"""The stream store: where generated events wait for their readers.

One writer per stream (the generation runner) appends events already framed
as SSE bytes, so replay and any number of readers cost no re-encoding. A
reader asks for "everything after event N" and gets the pending frames joined
into one write, waiting at most ``timeout`` seconds (so the SSE view can send
a heartbeat and notice a disconnect).

Event ids are the integers 1, 2, 3, ... in order. A reader's position is the
last id it has (0: none yet): the ``<seq>`` of the browser's ``Last-Event-ID``
(``<tag>.<seq>`` on the wire, :mod:`chatstream.event_ids`).

This module holds what every store shares: the protocols (:class:`StreamStore`,
:class:`StreamWriter`, :class:`StreamReader`), what a read returns
(:class:`Chunk`), reader presence (:class:`Presence`) and stream ids. The rooms:

* :mod:`chatstream.store.buffer`: one stream's frames in this process
  (:class:`~chatstream.store.buffer.FrameLog`,
  :class:`~chatstream.store.buffer.EventBuffer`) and the stream a process
  generates (:class:`~chatstream.store.buffer.OwnedStream`, its writer).
* :mod:`chatstream.store.memory`: :class:`~chatstream.store.memory.MemoryStreamStore`,
  everything in this process (the default, one worker).
* ``chatstream/store/redis/``: the Redis store with the same interface,
  sharing streams across workers and machines.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from typing import Protocol

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
    """The runner's handle on one stream; the only thing that appends.

    ``append(frames, final=)`` adds framed events (``final``: the last batch;
    nothing is appended after it); ``on_cancel(callback)`` is told the reason
    when a cancel is asked for; ``cancel_reason`` is that reason, or None.
    """

    stream_id: str

    def append(self, frames: list[bytes], *, final: bool = False) -> None: ...
    def on_cancel(self, callback: Callable[[str], None]) -> None: ...
    @property
    def cancel_reason(self) -> str | None: ...


class StreamReader(Protocol):
    """One reader's handle on one stream, counted in its :class:`Presence`.

    ``read(after, timeout)`` returns the frames after event ``after``, waiting
    up to ``timeout`` seconds for some (None: until a frame or a wake-up);
    ``close()`` (idempotent) when the client goes.
    """

    def read(self, after: int, timeout: float | None) -> Chunk: ...
    def close(self) -> None: ...


class StreamStore(Protocol):
    """The interface every store implements (memory, Redis).

    * ``create()``: a new running stream and its writer (may raise
      :class:`~chatstream.errors.Overloaded` or
      :class:`~chatstream.errors.StoreUnavailable`).
    * ``status(id)``: ``(highest id a reader may hold, finished)``;
      ``open_reader(id)``: a reader; ``cancel(id, reason)``: ask the writer
      to stop, False if it had ended. All three raise
      :class:`~chatstream.errors.NotFound` for an unknown or expired id.
    * ``presence_many(ids)``: reader :class:`Presence` of the known ones.
    * ``wake_all()``: wake every waiting reader (heartbeat, shutdown);
      ``ping()``: the store answers (readiness).
    """

    def create(self) -> StreamWriter: ...
    def status(self, stream_id: str) -> tuple[int, bool]: ...
    def open_reader(self, stream_id: str) -> StreamReader: ...
    def cancel(self, stream_id: str, reason: str) -> bool: ...
    def presence_many(self, stream_ids: list[str]) -> dict[str, Presence]: ...
    def wake_all(self) -> None: ...
    def ping(self) -> bool: ...


__all__ = [
    "ID_BYTES",
    "Chunk",
    "Presence",
    "StreamReader",
    "StreamStore",
    "StreamWriter",
    "new_stream_id",
]
