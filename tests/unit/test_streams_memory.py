"""What the memory store holds, and for how long (chatstream/store/).

The frame log, bounded reads, the sweep timer, the byte cap and the release
of streams whose readers never read.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from chatstream.concurrency import Driver
from chatstream.errors import NotFound
from chatstream.errors import Overloaded
from chatstream.store.buffer import EXPIRED_FRAME
from chatstream.store.buffer import READ_MAX_BYTES
from chatstream.store.buffer import RELEASED
from chatstream.store.buffer import EventBuffer
from chatstream.store.buffer import FrameLog
from chatstream.store.buffer import stored_size
from chatstream.store.memory import MemoryStreamStore
from tests.support.client import wait_until

FRAMES = [f"id: {i}\ndata: {'x' * (i % 7)}\n\n".encode() for i in range(1, 200)]


def read_all(buffer: EventBuffer, after: int = 0) -> tuple[bytes, list[int]]:
    """Read to the end as the events view does; :returns: the bytes and each read's size."""
    data, sizes = b"", []
    while True:
        chunk = buffer.take(after)
        data += chunk.data
        sizes.append(len(chunk.data))
        after = chunk.last_id
        if chunk.finished:
            return data, sizes
        assert chunk.data, "a running stream's read made no progress"


def test_the_frame_log_is_the_frames():
    log = FrameLog(FRAMES[:100])
    log.extend(FRAMES[100:])
    assert len(log) == len(FRAMES)
    assert log == FRAMES and list(log) == FRAMES
    assert log[3] == FRAMES[3] and log[-1] == FRAMES[-1]
    assert log[5:9] == FRAMES[5:9]
    assert stored_size(log) == sum(map(len, FRAMES)) + 8 * len(FRAMES)
    for after in (0, 1, 50, 198):
        data, end = log.span(after, len(FRAMES), 40)
        assert data == b"".join(FRAMES[after:end]) and end > after
        assert isinstance(data, bytes)  # what WSGI servers take
    assert log.span(0, 10, 10**9) == (b"".join(FRAMES[:10]), 10)  # never past ``count``


@pytest.mark.parametrize("final", [False, True], ids=["running", "finished"])
def test_every_read_is_bounded_and_nothing_is_lost(final):
    big = [bytes([65 + i % 26]) * 3000 + b"\n\n" for i in range(100)]  # ~300 KB
    buffer = EventBuffer(Driver("threading"))
    buffer.extend(big[:-1])
    buffer.extend(big[-1:], final=final)
    if final:
        data, sizes = read_all(buffer)
    else:
        data, after, sizes = b"", 0, []
        while after < len(big):
            chunk = buffer.take(after)
            data, after = data + chunk.data, chunk.last_id
            sizes.append(len(chunk.data))
            assert not chunk.finished
    assert data == b"".join(big)
    assert max(sizes) < READ_MAX_BYTES + 3002  # the limit, plus at most one frame
    assert len(sizes) >= 5


def test_one_frame_larger_than_the_limit_is_still_read_whole():
    buffer = EventBuffer(Driver("threading"))
    huge = b"data: " + b"x" * (2 * READ_MAX_BYTES) + b"\n\n"
    buffer.extend([huge, b"end\n\n"], final=True)
    first = buffer.take(0)
    assert (first.data, first.last_id, first.finished) == (huge, 1, False)
    assert buffer.take(1) == (b"end\n\n", 2, True)


@pytest.fixture
def store():
    return MemoryStreamStore(Driver("threading"), ttl_s=60, sweep_s=0.02)


def finished_stream(store, frames=FRAMES):
    writer = store.create()
    writer.append(frames[:-1])
    writer.append(frames[-1:], final=True)
    return writer


def test_a_finished_stream_is_freed_without_the_cycle_collector():
    """The cancel callback points at the generation: ending the stream drops it."""

    class Generation:  # what generation.py's runner holds, in miniature
        def __init__(self, writer):
            self.writer = writer
            writer.on_cancel(lambda _reason: self.close())

        def close(self):
            pass

    store = MemoryStreamStore(Driver("threading"), ttl_s=0.05, sweep_s=0.02)
    gc.disable()
    try:
        writer = store.create()
        generation = Generation(writer)
        alive = weakref.ref(generation)  # OwnedStream has slots, no weakref
        writer.append(FRAMES, final=True)
        del generation, writer
        wait_until(lambda: not store._streams, timeout=10)
        assert alive() is None
    finally:
        gc.enable()


def test_expired_streams_are_swept_by_the_timer(store):
    store.ttl_s = 0.05
    writer = finished_stream(store)
    held = store.held_bytes
    assert held == stored_size(FrameLog(FRAMES))
    # No create(), no sweep() call: only the timer can drop it.
    wait_until(lambda: not store._streams, timeout=10)
    assert store.held_bytes == 0
    with pytest.raises(NotFound):
        store.status(writer.stream_id)
    wait_until(lambda: not store.sweeper.alive, timeout=10)  # the timer stops when idle


def test_a_reader_that_never_reads_does_not_pin_the_stream(store):
    store.ttl_s = 0.05
    writer = finished_stream(store)
    stream = store._streams[writer.stream_id]
    reader = store.open_reader(writer.stream_id)  # attached, reads nothing
    wait_until(lambda: not store._streams, timeout=10)
    assert stream.frames is RELEASED  # its frames went with the store's copy
    chunk = reader.read(5, timeout=0)
    assert (chunk.data, chunk.last_id, chunk.finished) == (EXPIRED_FRAME, 5, True)
    reader.close()


def test_the_byte_cap_drops_the_oldest_finished_streams_first():
    size = stored_size(FrameLog(FRAMES))
    store = MemoryStreamStore(Driver("threading"), ttl_s=60, max_bytes=3 * size)
    writers = [finished_stream(store) for _ in range(5)]
    running = store.create()
    running.append(FRAMES[:10])
    assert store.held_bytes <= 3 * size
    assert store.evicted == 3
    alive = [w.stream_id in store._streams for w in writers]
    assert alive == [False, False, False, True, True]
    assert running.stream_id in store._streams  # a running stream is never dropped


def test_running_streams_alone_at_the_cap_refuse_new_ones():
    store = MemoryStreamStore(
        Driver("threading"), ttl_s=60, max_bytes=stored_size(FrameLog(FRAMES))
    )
    running = store.create()
    running.append(FRAMES)  # over the cap, nothing finished to drop
    with pytest.raises(Overloaded) as info:
        store.create()
    assert info.value.code == "store_full" and info.value.status == 503
    running.append([b"end\n\n"], final=True)
    store.create()  # the finished stream is dropped to make room
    assert running.stream_id not in store._streams


def test_held_bytes_return_to_zero(store):
    store.ttl_s = 0.05
    for _ in range(3):
        finished_stream(store)
    wait_until(lambda: store.held_bytes == 0 and not store._streams, timeout=10)
