"""``deploy/nginx.conf`` in front of a real ``gunicorn -k gevent``.

A real nginx (started from a temp dir by :mod:`tests.support.nginx`) runs the
shipped site file with only its addresses substituted and its SSE
``proxy_read_timeout`` lowered to 1 s; the app heartbeats every 0.2 s and
trusts one proxy hop (``CHATSTREAM_PROXY_FIX=1``). Assertions are on events
and on what the app reports, never on timing.
"""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import connect_sse

from tests.live.conftest import LIVE_ENV
from tests.support.client import Event
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.nginx import NginxServer
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.live, pytest.mark.nginx]

READ_TIMEOUT = "1s"  # nginx's, for the event stream location
APP_ENV = {**LIVE_ENV, "CHATSTREAM_HEARTBEAT_S": "0.2", "CHATSTREAM_PROXY_FIX": "1"}
# Not 127.0.0.1: the address nginx itself connects to gunicorn from, so the
# app can only report this one if it took it from X-Forwarded-For.
CLIENT_ADDR = "127.0.0.2"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with GunicornServer(APP_ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp("nginx")
    with NginxServer(upstream.port, directory, read_timeout=READ_TIMEOUT) as nginx:
        yield nginx


@pytest.fixture
def client():
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDR)
    with httpx.Client(transport=transport, timeout=30) as c:
        yield c


def read_until_end_or_cut(client, url) -> tuple[list[Event], Exception | None]:
    """All events until ``end``/``error``, or until the connection is cut."""
    events: list[Event] = []
    try:
        with connect_sse(client, "GET", url) as source:
            for sse in source.iter_sse():
                if sse.event and sse.data:
                    events.append(Event(sse.id, sse.event, json.loads(sse.data)))
                if sse.event in ("end", "error"):
                    break
    except httpx.TransportError as exc:
        return events, exc
    return events, None


def test_first_token_arrives_while_the_model_is_still_generating(proxy, client):
    # Token 0 comes at once, token 1 only after 10 s of silence (heartbeats
    # only). The client cancels as soon as it sees token 0, so token 1 is
    # never generated: token 0 can only arrive if no buffer or compressor
    # between gunicorn and the client held it back waiting for more bytes.
    url = submit(client, proxy.url, prompt="x", options={"tokens": 2, "delay_ms": 10_000})
    events: list[Event] = []
    with connect_sse(client, "GET", url) as source:
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        # httpx asked for gzip; a compressed event stream would be held back.
        assert "content-encoding" not in source.response.headers
        for sse in source.iter_sse():
            if not sse.data:
                continue  # the retry-only preamble
            events.append(Event(sse.id, sse.event, json.loads(sse.data)))
            if sse.event == "newToken":
                assert client.delete(url).json()["cancelled"] is True
            if sse.event in ("end", "error"):
                break
    assert [e.token for e in events[:-1]] == ["0 "]
    assert events[-1].data == {"finish_reason": "cancelled", "reason": "client"}


def test_other_responses_are_compressed_so_gzip_off_is_what_keeps_sse_plain(proxy, client):
    # The wrapper config compresses every type (gzip_types *); only the
    # event-stream location's `gzip off` exempts it.
    response = client.get(proxy.url + "/healthz?verbose=1")
    assert response.headers.get("content-encoding") == "gzip"
    assert response.json()["status"] == "ok"


def test_last_event_id_passes_through_and_resumes_exactly(proxy, client):
    url = submit(client, proxy.url, prompt="x", options={"tokens": 40, "delay_ms": 20})
    head = read_events(client, url, limit=7)  # then the connection drops
    tail = read_events(client, url, last_event_id=head[-1].id)
    assert tail[0].id.endswith(".8") and tail[-1].event == "end"
    tokens = [e.token for e in head + tail if e.event == "newToken"]
    assert tokens == [f"{i} " for i in range(40)]  # nothing lost, nothing repeated
    response = client.get(url, headers={"Last-Event-ID": tail[-1].id})
    assert response.status_code == 204


def test_seed_contract_session_cookie_passes_through(proxy, client):
    submit(client, proxy.url, prompt="x", options={"tokens": 5})
    assert text_of(read_events(client, proxy.url + "/api/streaming")) == "0 1 2 3 4 "


def test_heartbeats_keep_a_silent_stream_open_past_the_read_timeout(proxy, client):
    # The model is silent for 3 s between its two tokens, three times nginx's
    # read timeout here; `: ping` every 0.2 s keeps the upstream read alive.
    url = submit(client, proxy.url, prompt="x", options={"tokens": 2, "delay_ms": 3000})
    with client.stream("GET", url) as response:
        body = response.read()
    assert b": ping\n" in body
    frames = [f for f in body.split(b"\n\n") if b"data: " in f]
    data = [json.loads(f.split(b"data: ", 1)[1].split(b"\n", 1)[0]) for f in frames]
    assert data[:2] == [{"token": "0 "}, {"token": "1 "}]
    assert data[2]["finish_reason"] == "stop" and len(data) == 3


def test_without_heartbeats_nginx_cuts_the_silent_stream(tmp_path):
    # The control for the test above: same nginx settings, a heartbeat slower
    # than the silence, and nginx's read timeout ends the stream mid-answer.
    env = {**APP_ENV, "CHATSTREAM_HEARTBEAT_S": "60"}
    with (
        GunicornServer(env, log_dir=tmp_path) as upstream,
        NginxServer(upstream.port, tmp_path / "nginx", read_timeout=READ_TIMEOUT) as nginx,
        httpx.Client(timeout=30) as client,
    ):
        url = submit(client, nginx.url, prompt="x", options={"tokens": 2, "delay_ms": 3000})
        events, cut = read_until_end_or_cut(client, url)
        client.delete(url)
        log = nginx.log()
    assert isinstance(cut, httpx.RemoteProtocolError)
    assert [e.token for e in events] == ["0 "]  # no second token, no `end`
    assert "upstream timed out" in log


def test_app_sees_the_client_address_from_the_proxy_hop_only(proxy, client):
    # The client forges a first hop and a scheme; nginx appends the real peer
    # and overwrites X-Forwarded-Proto. With CHATSTREAM_PROXY_FIX=1 the app
    # trusts exactly the hop nginx appended.
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    seen = client.get(proxy.url + "/healthz?verbose=1", headers=forged).json()
    assert seen["client"] == CLIENT_ADDR
    assert seen["scheme"] == "http"


def test_gunicorn_reached_directly_trusts_whatever_it_is_told(upstream, client):
    # Why deploy/nginx.conf says to bind gunicorn to a private address: a
    # client that bypasses nginx is taken at its word as if it were the proxy.
    forged = {"X-Forwarded-For": "203.0.113.9"}
    seen = client.get(upstream.url + "/healthz?verbose=1", headers=forged).json()
    assert seen["client"] == "203.0.113.9"


def test_a_browser_post_through_nginx_is_same_origin(proxy, client):
    # The app compares Origin with the scheme, host and port the request
    # reached: nginx must pass the Host as the browser sent it, port included.
    body = {"prompt": "x", "options": {"tokens": 3}}
    ours = client.post(proxy.url + "/api/streaming", json=body, headers={"Origin": proxy.url})
    assert ours.status_code == 202, ours.text
    assert text_of(read_events(client, proxy.url + ours.json()["stream_url"])) == "0 1 2 "
    theirs = client.post(
        proxy.url + "/api/streaming",
        json=body,
        headers={"Origin": "http://evil.example"},
    )
    assert theirs.status_code == 403
