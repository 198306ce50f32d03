"""The frames of one stream, kept compactly: one buffer and an offset per frame.

A token-sized SSE frame is ~50 bytes; as its own ``bytes`` object in a list
it costs ~50 more, and thousands of small long-lived objects fragment the
allocator's arenas so that freed streams do not give memory back. Here a
frame costs its bytes plus an 8-byte offset.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from collections.abc import Sequence
from typing import overload

#: What the memory store counts per frame beyond its bytes (its offset);
#: ``MAX_STORE_MB`` is checked against :func:`stored_size`.
FRAME_OFFSET_BYTES = 8


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
