"""chatstream on gunicorn, with the openai adapter pointed at a local OpenAI-wire server."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import drop_after
from tests.fakes.openai_server import http_error
from tests.fakes.openai_server import tokens
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.server import GunicornServer

pytestmark = pytest.mark.live

TRICKY = ["Hel", "lo", "\n\n", "  indented", " é", "😀", "\r\n", "\u2028", "data: x", ""]


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def server(fake, tmp_path_factory):
    env = {
        "CHATSTREAM_ADAPTER": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "CHATSTREAM_MODELS": "gpt-test,gpt-other",
        "CHATSTREAM_MODEL": "gpt-test",
        "CHATSTREAM_OPENAI_MAX_RETRIES": "1",
    }
    with GunicornServer(env, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def test_tokens_stream_byte_exact_with_usage(fake, server, client):
    fake.push(tokens(TRICKY))
    url = submit(
        client,
        server.url,
        messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}],
        model="gpt-other",
    )
    events = read_events(client, url)
    assert [e.token for e in events if e.event == "newToken"] == [t for t in TRICKY if t]
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
    assert events[-1].data["usage"]["completion_tokens"] == len(TRICKY)
    body = fake.requests[-1].body
    assert body["model"] == "gpt-other" and body["messages"][0]["role"] == "system"


def test_auth_error_becomes_an_error_event(fake, server, client):
    fake.push(http_error(401, "invalid_request_error", "Incorrect API key", code="invalid_api_key"))
    events = read_events(client, submit(client, server.url, prompt="x"))
    assert events == events[-1:]
    assert events[-1].event == "error" and events[-1].data["code"] == "upstream_auth"
    assert "Incorrect API key" in events[-1].data["message"]


def test_rate_limit_after_retries_is_an_error_event(fake, server, client):
    fake.push(*[http_error(429, "requests", "slow", headers={"retry-after-ms": "10"})] * 2)
    events = read_events(client, submit(client, server.url, prompt="x"))
    assert events[-1].data["code"] == "upstream_rate_limited"


def test_drop_mid_stream_keeps_tokens_then_errors(fake, server, client):
    fake.push(drop_after(3, ["a", "b", "c", "d"]))
    events = read_events(client, submit(client, server.url, prompt="x"))
    assert text_of(events) == "abc"
    assert events[-1].event == "error" and events[-1].data["code"] == "upstream_dropped"


def test_cancel_closes_the_upstream_connection(fake, server, client):
    fake.push(tokens([f"t{i} " for i in range(100)], delay_s=0.05))
    url = submit(client, server.url, prompt="x")
    head = read_events(client, url, limit=2)
    client.delete(url)
    record = fake.responses[-1]
    assert record.client_closed.wait(10)
    assert record.tokens_written < 100
    rest = read_events(client, url, last_event_id=head[-1].id)
    assert rest[-1].data == {"finish_reason": "cancelled", "reason": "client"}


def test_generations_reuse_the_upstream_connection(fake, server, client):
    # Under the gevent worker: the body's end is drained after [DONE] (with a
    # watchdog greenlet), so the connection goes back to the pool.
    fake.wait_for_responses(len(fake.requests))  # earlier tests' responses are done
    before = fake.connections
    for _ in range(3):
        fake.push(tokens(["ok"]))
        events = read_events(client, submit(client, server.url, prompt="x"))
        assert events[-1].event == "end" and text_of(events) == "ok"
    assert fake.connections - before <= 1


def test_an_upstream_closing_idle_connections_costs_no_answer(fake, server, client):
    """The upstream closes the pooled keep-alive connections (a restart, its
    keep-alive timeout): under the gevent worker the pool's probe of idle
    connections (the native poll, upstream_pool.native_readability_probe)
    sees it and the next generation opens a new connection."""
    fake.push(tokens(["warm"]))
    assert text_of(read_events(client, submit(client, server.url, prompt="x"))) == "warm"
    fake.wait_for_responses(len(fake.requests))
    fake.close_connections()
    before = fake.connections
    for _ in range(2):
        fake.push(tokens(["after"]))
        events = read_events(client, submit(client, server.url, prompt="x"))
        assert events[-1].event == "end" and text_of(events) == "after"
    assert fake.connections - before == 1  # one new connection, then reused
