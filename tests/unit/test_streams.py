"""The in-memory stream store: replay, resume, wake-ups, presence, TTL."""

from __future__ import annotations

import threading

import pytest

from chatstream.concurrency import Driver
from chatstream.errors import NotFound
from chatstream.store.memory import MemoryStreamStore


@pytest.fixture
def store():
    return MemoryStreamStore(Driver("threading"), ttl_s=60)


def test_ids_are_unguessable_and_distinct(store):
    ids = {store.create().stream_id for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) >= 32 for i in ids)  # 192 random bits, URL-safe


def test_late_reader_replays_everything_and_resume_skips_exactly(store):
    writer = store.create()
    writer.append([b"a", b"b"])
    writer.append([b"c"], final=True)
    reader = store.open_reader(writer.stream_id)
    chunk = reader.read(0, timeout=0)
    assert (chunk.data, chunk.last_id, chunk.finished) == (b"abc", 3, True)
    chunk = reader.read(2, timeout=0)
    assert (chunk.data, chunk.last_id, chunk.finished) == (b"c", 3, True)
    chunk = reader.read(3, timeout=0)
    assert (chunk.data, chunk.finished) == (b"", True)
    assert store.status(writer.stream_id) == (3, True)


def test_waiting_reader_is_woken_by_append(store):
    writer = store.create()
    reader = store.open_reader(writer.stream_id)
    got = []
    thread = threading.Thread(target=lambda: got.append(reader.read(0, timeout=30)))
    thread.start()
    writer.append([b"x"])
    thread.join(30)
    assert got and got[0].data == b"x" and not got[0].finished


def test_read_times_out_with_nothing(store):
    writer = store.create()
    chunk = store.open_reader(writer.stream_id).read(0, timeout=0.01)
    assert (chunk.data, chunk.last_id, chunk.finished) == (b"", 0, False)


def test_nothing_after_the_final_frame(store):
    writer = store.create()
    writer.append([b"end"], final=True)
    writer.append([b"late"])
    assert store.open_reader(writer.stream_id).read(0, 0).data == b"end"


def test_unknown_and_expired_streams_are_not_found(store):
    with pytest.raises(NotFound):
        store.status("nope")
    writer = store.create()
    writer.append([b"x"], final=True)
    store._streams[writer.stream_id].ended_at -= 61  # past the TTL
    with pytest.raises(NotFound):
        store.open_reader(writer.stream_id)
    assert store.sweep() == 1
    assert writer.stream_id not in store._streams


def test_presence_counts_readers(store):
    writer = store.create()
    assert store.presence(writer.stream_id).ever_attached is False
    r1 = store.open_reader(writer.stream_id)
    r2 = store.open_reader(writer.stream_id)
    assert store.presence(writer.stream_id).readers == 2
    r1.close()
    r1.close()  # idempotent
    r2.close()
    presence = store.presence(writer.stream_id)
    assert (presence.readers, presence.ever_attached) == (0, True)


def test_cancel_calls_the_writer_once(store):
    writer = store.create()
    reasons = []
    writer.on_cancel(reasons.append)
    assert store.cancel(writer.stream_id, "client") is True
    assert store.cancel(writer.stream_id, "client") is True
    assert reasons == ["client"] and writer.cancel_reason == "client"
    writer.append([b"end"], final=True)
    assert store.cancel(writer.stream_id, "client") is False
