"""The reader lifecycle owner: count, gauge, heartbeat ticker, draining."""

from __future__ import annotations

import pytest

from chatstream import metrics
from chatstream.concurrency import Driver
from chatstream.errors import NotFound
from chatstream.readers import RECONNECT
from chatstream.readers import Readers
from chatstream.store.memory import MemoryStreamStore
from tests.support.client import wait_until


@pytest.fixture
def store():
    return MemoryStreamStore(Driver("threading"), ttl_s=60)


def gauge() -> float:
    return metrics.READERS_ACTIVE._value.get()


def test_attach_counts_until_closed_once(store):
    readers = Readers(store, Driver("threading"), heartbeat_s=0.05)
    writer = store.create()
    before = gauge()
    attachment = readers.attach(writer.stream_id)
    assert readers.count == 1 and gauge() == before + 1
    assert store.presence(writer.stream_id).readers == 1
    with attachment as reader:
        writer.append([b"event: x\ndata: 1\nid: 1\n\n"], final=True)
        assert reader.read(0, 1).finished
    attachment.close()  # idempotent: the response's on-close hook calls it too
    assert readers.count == 0 and gauge() == before
    assert store.presence(writer.stream_id).readers == 0


def test_attach_to_an_unknown_stream_counts_nothing(store):
    readers = Readers(store, Driver("threading"), heartbeat_s=0.05)
    with pytest.raises(NotFound):
        readers.attach("nope")
    assert readers.count == 0


def test_ticker_wakes_waiting_readers_and_stops_with_the_last(store):
    readers = Readers(store, Driver("threading"), heartbeat_s=0.02)
    writer = store.create()
    with readers.attach(writer.stream_id) as reader:
        chunk = reader.read(0, None)  # returns only because the ticker woke it
        assert chunk.data == b"" and not chunk.finished
    wait_until(lambda: not readers.ticker._running, timeout=5)


def test_drain_sets_the_flag_and_wakes_readers(store):
    readers = Readers(store, Driver("threading"), heartbeat_s=60)
    writer = store.create()
    buffer = store._get(writer.stream_id)

    def drain_once_waiting():
        wait_until(lambda: buffer.waiting, timeout=5)
        readers.drain()

    with readers.attach(writer.stream_id) as reader:
        Driver("threading").spawn(drain_once_waiting)
        chunk = reader.read(0, 10)  # woken by drain, not by the 60 s ticker
        assert readers.draining and chunk.data == b"" and not chunk.finished


def test_reconnect_frame_is_id_less():
    assert RECONNECT.startswith(b"event: error\ndata: {") and b"\nid:" not in RECONNECT
    assert b'"reconnect":true' in RECONNECT
