"""The whole HTTP contract against a real ``gunicorn -k gevent`` on loopback.

One test per bullet of the contract; assertions are on events parsed by
httpx-sse, never on timing.
"""

from __future__ import annotations

import httpx
import pytest

from chatstream import event_ids
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.client import wait_until
from tests.support.server import GunicornServer

pytestmark = pytest.mark.live

EXPECTED_5 = "0 1 2 3 4 "


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def health(client, server):
    return client.get(server.url + "/healthz").json()


def test_post_then_get_streams_every_token_in_order(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 50})
    events = read_events(client, url)
    assert [e.token for e in events[:-1]] == [f"{i} " for i in range(50)]
    tag = event_ids.tag(url.rsplit("/", 1)[1])
    assert [e.id for e in events] == [f"{tag}.{i}" for i in range(1, 52)]
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
    assert events[-1].data["usage"]["completion_tokens"] == 50


def test_headers_and_retry_on_the_first_event(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 1})
    with client.stream("GET", url) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        body = response.read()
    # Only comment lines may come before it; ``retry:`` shares the first event's block.
    first_block = body.split(b"\n\n")[0].split(b"\n")
    fields = [line for line in first_block if not line.startswith(b":")]
    assert fields[:2] == [b"retry: 1000", b"event: newToken"]


def test_demo_default_reply_is_markdown(server, client):
    url = submit(client, server.url, prompt="What is SSE?")
    text = text_of(read_events(client, url))
    assert text.startswith("## Hello from the demo model")
    assert "> What is SSE?" in text and "```python" in text


def test_late_attach_replays_from_the_start(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 20})
    first = read_events(client, url)  # drains to the end
    late = read_events(client, url)  # a reader arriving after the end
    assert late == first and text_of(late) == "".join(f"{i} " for i in range(20))


def test_last_event_id_resumes_mid_stream_exactly(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 40, "delay_ms": 20})
    head = read_events(client, url, limit=7)  # then the connection drops
    assert [e.token for e in head] == [f"{i} " for i in range(7)]
    tail = read_events(client, url, last_event_id=head[-1].id)
    tokens = [e.token for e in head + tail if e.event == "newToken"]
    assert tokens == [f"{i} " for i in range(40)]  # nothing lost, nothing repeated
    assert tail[0].id.endswith(".8") and tail[-1].event == "end"


def test_204_once_everything_was_delivered(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 3})
    events = read_events(client, url)
    response = client.get(url, headers={"Last-Event-ID": events[-1].id})
    assert response.status_code == 204
    assert response.content == b"" and "content-type" not in response.headers


def test_several_readers_get_the_same_events(server, client):
    url = submit(client, server.url, prompt="hi", options={"tokens": 30, "delay_ms": 5})
    with httpx.Client(timeout=30) as other:
        assert read_events(client, url) == read_events(other, url)


def test_seed_contract_cookie_and_two_browsers_isolated(server):
    with httpx.Client(timeout=30) as alice, httpx.Client(timeout=30) as bob:
        submit(alice, server.url, prompt="alice", options={"tokens": 3})
        submit(bob, server.url, prompt="bob", options={"tokens": 5})
        assert text_of(read_events(alice, server.url + "/api/streaming")) == "0 1 2 "
        assert text_of(read_events(bob, server.url + "/api/streaming")) == EXPECTED_5
        with httpx.Client(timeout=30) as stranger:
            response = stranger.get(server.url + "/api/streaming")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "stream_not_found"


def test_seed_contract_resumes_with_last_event_id(server):
    with httpx.Client(timeout=30) as browser:
        submit(browser, server.url, prompt="x", options={"tokens": 10, "delay_ms": 10})
        head = read_events(browser, server.url + "/api/streaming", limit=4)
        tail = read_events(browser, server.url + "/api/streaming", last_event_id=head[-1].id)
        assert text_of(head + tail) == "".join(f"{i} " for i in range(10))


def test_post_with_accept_event_stream(server, client):
    with client.stream(
        "POST",
        server.url + "/api/streaming",
        json={"prompt": "x", "options": {"tokens": 5}},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        stream_id = response.headers["x-stream-id"]
        assert response.headers["content-location"] == f"/api/streaming/{stream_id}"
        body = response.read().decode()
    assert body.count("event: newToken") == 5 and "event: end" in body
    assert f"id: {event_ids.tag(stream_id)}.6" in body


def test_delete_cancels_and_readers_get_cancelled(server, client):
    url = submit(client, server.url, prompt="x", options={"tokens": 1000, "delay_ms": 50})
    head = read_events(client, url, limit=2)
    assert client.delete(url).json()["cancelled"] is True
    rest = read_events(client, url, last_event_id=head[-1].id)
    assert rest[-1].event == "end" and rest[-1].data == {
        "finish_reason": "cancelled",
        "reason": "client",
    }
    assert len(head) + len(rest) < 100


def test_disconnect_ends_the_reader_and_then_the_generation(server, client):
    url = submit(client, server.url, prompt="x", options={"tokens": 10_000, "delay_ms": 20})
    read_events(client, url, limit=3)  # leaves: the connection is closed
    # The server notices at its next write (a token or a heartbeat), the
    # generator exits, and with no reader back within the detach grace
    # (0.5 s here) the generation is cancelled.
    wait_until(lambda: health(client, server)["readers"] == 0)
    wait_until(lambda: health(client, server)["running"] == 0)
    events = read_events(client, url)
    assert events[-1].data == {"finish_reason": "cancelled", "reason": "no_reader"}


def test_heartbeat_while_the_model_is_silent(server, client):
    url = submit(client, server.url, prompt="x", options={"tokens": 2, "delay_ms": 3000})
    seen = b""
    with client.stream("GET", url) as response:
        for chunk in response.iter_raw():
            seen += chunk
            if b": ping" in seen:
                break
    assert b'"token":"0 "' in seen and b": ping\n" in seen
    client.delete(url)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"{oops", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
        ),
        ({"json": {"prompt": ""}}, 400, "empty_prompt"),
        ({"json": {"messages": "nope"}}, 400, "invalid_shape"),
        ({"json": {"prompt": "x" * 40_000}}, 413, "payload_too_large"),
        (
            {"content": b"hi", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"prompt": "x", "model": "nope"}}, 400, "unknown_model"),
    ],
)
def test_bad_input_is_a_json_4xx(server, client, kwargs, status, code):
    response = client.post(server.url + "/api/streaming", **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code


def test_unknown_stream_wrong_method_and_bad_last_event_id(server, client):
    response = client.get(server.url + "/api/streaming/not-a-stream")
    assert response.status_code == 404 and response.json()["error"]["code"] == "stream_not_found"
    response = client.put(server.url + "/api/streaming", json={"prompt": "x"})
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    url = submit(client, server.url, prompt="x", options={"tokens": 2})
    response = client.get(url, headers={"Last-Event-ID": "garbage"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_last_event_id"


def test_too_many_running_streams_is_503(tmp_path):
    env = {"CHATSTREAM_MAX_STREAMS": "2", "CHATSTREAM_ADAPTER": "demo"}
    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=30) as client:
        slow = {"prompt": "x", "options": {"tokens": 5, "delay_ms": 10_000}}
        urls = [submit(client, srv.url, **slow) for _ in range(2)]
        response = client.post(srv.url + "/api/streaming", json=slow)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["error"]["code"] == "overloaded"
        for url in urls:
            client.delete(url)


def test_bad_config_stops_startup_with_one_clear_line(tmp_path):
    server = GunicornServer({"CHATSTREAM_HEARTBEAT_S": "abc"}, log_dir=tmp_path)
    with pytest.raises(RuntimeError):
        server.start(timeout=20)
    server.stop()
    lines = [line for line in server.log().splitlines() if "CHATSTREAM_HEARTBEAT_S" in line]
    assert lines == [
        "chatstream: configuration error: CHATSTREAM_HEARTBEAT_S='abc' is invalid: "
        "expected a number"
    ]
    assert "Traceback" not in server.log()
