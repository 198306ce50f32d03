"""Graceful shutdown on SIGTERM: running streams finish, then readers move on."""

from __future__ import annotations

import signal

import httpx
import pytest
from httpx_sse import connect_sse

from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.redis_server import RedisServer
from tests.support.server import GunicornServer

pytestmark = pytest.mark.live


def test_running_stream_finishes_within_graceful_timeout(tmp_path):
    env = {"CHATSTREAM_ADAPTER": "demo", "GRACEFUL_TIMEOUT": "20"}
    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=30) as client:
        url = submit(client, srv.url, prompt="x", options={"tokens": 30, "delay_ms": 50})
        with connect_sse(client, "GET", url) as source:
            events = []
            for sse in source.iter_sse():
                if sse.event == "newToken" and not events:
                    srv.proc.send_signal(signal.SIGTERM)  # mid-stream
                if sse.event and sse.data:
                    events.append(sse)
        assert [e.event for e in events] == ["newToken"] * 30 + ["end"]
        assert srv.proc.wait(30) == 0
    assert "shutdown: 1 generation(s) running" in srv.log()


def test_generation_outliving_graceful_timeout_ends_with_error(tmp_path):
    env = {"CHATSTREAM_ADAPTER": "demo", "GRACEFUL_TIMEOUT": "4"}
    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=30) as client:
        url = submit(client, srv.url, prompt="x", options={"tokens": 10_000, "delay_ms": 20})
        head = read_events(client, url, limit=2)
        srv.proc.send_signal(signal.SIGTERM)
        rest = read_events(client, url, last_event_id=head[-1].id)
        assert rest[-1].event == "error" and rest[-1].data["code"] == "server_shutdown"
        srv.proc.wait(30)


def test_with_redis_readers_resume_on_another_instance(tmp_path):
    with RedisServer() as redis_server:
        env = {
            "CHATSTREAM_REDIS_URL": redis_server.url,
            "CHATSTREAM_ADAPTER": "demo",
            "GRACEFUL_TIMEOUT": "4",
            "CHATSTREAM_REDIS_BEAT_S": "0.2",
        }
        with (
            GunicornServer(env, log_dir=tmp_path) as owner,
            GunicornServer(env, log_dir=tmp_path) as leaving,
            httpx.Client(timeout=30) as client,
        ):
            url = submit(client, owner.url, prompt="x", options={"tokens": 200, "delay_ms": 20})
            path = url[len(owner.url) :]
            events = []
            with connect_sse(client, "GET", leaving.url + path) as source:
                for sse in source.iter_sse():
                    if sse.event == "newToken" and len(events) == 3:
                        leaving.proc.send_signal(signal.SIGTERM)
                    if sse.event and sse.data:
                        events.append(sse)
            # The leaving instance told its reader to reconnect (no id), then closed.
            assert events[-1].event == "error" and '"reconnect":true' in events[-1].data
            assert events[-1].id == events[-2].id  # httpx-sse keeps the last id
            last_id = events[-2].id
            rest = read_events(client, owner.url + path, last_event_id=last_id)
            tokens = [e.data for e in events[:-1]]
            assert len(tokens) + len(rest) - 1 == 200
            assert text_of(rest).startswith(f"{int(last_id.rsplit('.', 1)[-1])} ")
            assert rest[-1].event == "end"
