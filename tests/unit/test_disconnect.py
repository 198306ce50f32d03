"""A reader that disconnects ends its generator at once (no server needed)."""

from __future__ import annotations

import time

import pytest

from chatstream import create_app
from chatstream import sse


def first_event_chunk(chunks):
    """The first chunk holding an event (``: ping`` may come first if none was ready)."""
    for _ in range(100):
        chunk = next(chunks)
        if chunk != sse.HEARTBEAT:
            return chunk
    raise AssertionError("no event in 100 chunks")


@pytest.fixture
def app():
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "t",
            "ADAPTER": "demo",
            "HEARTBEAT_S": 0.05,
            "DETACH_GRACE_S": 0.1,
            "SWEEP_S": 0.02,
        }
    )


def test_disconnect_detaches_reader_and_cancels_generation(app):
    client = app.test_client()
    state = app.extensions["chatstream"]
    url = client.post(
        "/api/streaming", json={"prompt": "x", "options": {"tokens": 1000, "delay_ms": 20}}
    ).json["stream_url"]
    stream_id = url.rsplit("/", 1)[1]
    response = client.get(url, buffered=False)
    chunks = iter(response.response)
    first = first_event_chunk(chunks)
    assert first.startswith(b"retry: ") and b"newToken" in first  # retry: rides on an event
    assert state.store.presence(stream_id).readers == 1
    response.close()  # what the WSGI server does when a write fails
    assert state.store.presence(stream_id).readers == 0
    deadline = time.monotonic() + 10
    while stream_id in state.runner.running and time.monotonic() < deadline:
        time.sleep(0.02)
    # The detach grace passed with no reader back: the adapter was closed and
    # the generation ended early with ``cancelled``.
    assert stream_id not in state.runner.running
    last_id, finished = state.store.status(stream_id)
    assert finished and last_id < 1000


def test_heartbeat_while_model_is_silent(app):
    client = app.test_client()
    url = client.post(
        "/api/streaming", json={"prompt": "x", "options": {"tokens": 2, "delay_ms": 10_000}}
    ).json["stream_url"]
    response = client.get(url, buffered=False)
    chunks = iter(response.response)
    first = first_event_chunk(chunks)
    assert first.startswith(b"retry: ") and b"newToken" in first
    assert next(chunks) == b": ping\n"
    response.close()
    client.delete(url)
