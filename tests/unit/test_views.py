"""The HTTP contract through Flask's test client (threading driver)."""

from __future__ import annotations

import json

import pytest


def seq_of(event_id):
    """The position in a stream-scoped id ``<tag>.<seq>``."""
    return int(event_id.rsplit(".", 1)[-1])


def sse_events(body: bytes):
    out = []
    for block in body.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if "event" in fields:
            out.append((seq_of(fields["id"]), fields["event"], json.loads(fields["data"])))
    return out


def submit(client, **body):
    return client.post("/api/streaming", json=body)


def test_post_returns_202_with_id_url_and_location(client):
    response = submit(client, prompt="hi")
    assert response.status_code == 202
    assert response.json["stream_url"] == f"/api/streaming/{response.json['id']}"
    assert response.headers["Location"] == response.json["stream_url"]


def test_stream_headers_retry_and_events(client):
    response = submit(client, prompt="hi", options={"tokens": 3})
    stream = client.get(response.json["stream_url"])
    assert stream.status_code == 200
    assert stream.mimetype == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-cache, no-transform"
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert stream.data.startswith(b"retry: ")
    events = sse_events(stream.data)
    assert [e[2].get("token") for e in events[:3]] == ["0 ", "1 ", "2 "]
    assert events[-1][1] == "end" and events[-1][2]["finish_reason"] == "stop"


def test_multi_turn_messages(client):
    response = submit(
        client,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "two"},
        ],
    )
    body = client.get(response.json["stream_url"]).data
    text = "".join(e[2].get("token", "") for e in sse_events(body))
    assert "> two" in text and "turn **2**" in text


def test_last_event_id_resumes_exactly_and_204_after_end(client):
    url = submit(client, prompt="x", options={"tokens": 5}).json["stream_url"]
    full = sse_events(client.get(url).data)
    resumed = sse_events(client.get(url, headers={"Last-Event-ID": "3"}).data)
    assert resumed == full[3:]
    done = client.get(url, headers={"Last-Event-ID": str(full[-1][0])})
    assert done.status_code == 204 and done.data == b""


@pytest.mark.parametrize("bad", ["abc", "-1", "99", "1.5", "1 2"])
def test_malformed_last_event_id_is_400(client, bad):
    url = submit(client, prompt="x", options={"tokens": 2}).json["stream_url"]
    client.get(url)
    response = client.get(url, headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_last_event_id"


def test_seed_contract_uses_the_session_cookie(client, app):
    url = submit(client, prompt="x", options={"tokens": 2}).json["stream_url"]
    via_cookie = client.get("/api/streaming")
    assert via_cookie.status_code == 200
    assert sse_events(via_cookie.data) == sse_events(client.get(url).data)
    other_browser = app.test_client()
    response = other_browser.get("/api/streaming")
    assert response.status_code == 404 and response.json["error"]["code"] == "stream_not_found"


def test_post_with_accept_event_stream_streams_in_the_same_response(client):
    response = client.post(
        "/api/streaming",
        json={"prompt": "x", "options": {"tokens": 3}},
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert [e[1] for e in sse_events(response.data)] == ["newToken"] * 3 + ["end"]


def test_delete_cancels(client):
    url = submit(client, prompt="x", options={"tokens": 100, "delay_ms": 10_000}).json["stream_url"]
    response = client.delete(url)
    assert response.status_code == 200 and response.json["cancelled"] is True
    events = sse_events(client.get(url).data)
    assert events[-1][1:] == ("end", {"finish_reason": "cancelled", "reason": "client"})
    assert len(events) < 100


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
        ({"json": ["a list"]}, 400, "invalid_shape"),
        ({"json": {"prompt": 5}}, 400, "invalid_shape"),
        ({"json": {"messages": []}}, 400, "invalid_shape"),
        ({"json": {"messages": [{"role": "robot", "content": "x"}]}}, 400, "invalid_shape"),
        ({"json": {"messages": [{"role": "assistant", "content": "x"}]}}, 400, "invalid_shape"),
        ({"json": {"prompt": "x", "extra": 1}}, 400, "invalid_shape"),
        ({"json": {"prompt": "   "}}, 400, "empty_prompt"),
        ({"json": {"prompt": ""}}, 400, "empty_prompt"),
        ({"json": {"prompt": "x" * 32_001}}, 413, "payload_too_large"),
        ({"json": {"prompt": "x", "model": "gpt-99"}}, 400, "unknown_model"),
        ({"json": {"prompt": "x", "options": {"tokens": -1}}}, 400, "invalid_options"),
        ({"data": "prompt=hi", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": "x" * 300_000, "content_type": "application/json"}, 413, "payload_too_large"),
    ],
)
def test_bad_input_gets_a_json_error(client, kwargs, status, code):
    response = client.post("/api/streaming", **kwargs)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def test_conversation_size_counts_every_message(client):
    big = "x" * 20_000
    response = submit(
        client,
        messages=[
            {"role": "user", "content": big},
            {"role": "assistant", "content": big},
            {"role": "user", "content": "y"},
        ],
    )
    assert response.status_code == 413


def test_unknown_stream_is_404_json(client):
    for method in (client.get, client.delete):
        response = method("/api/streaming/doesnotexist")
        assert response.status_code == 404
        assert response.json["error"]["code"] == "stream_not_found"


@pytest.mark.parametrize(
    ("method", "url"),
    [("put", "/api/streaming"), ("post", "/api/streaming/abc"), ("patch", "/api/streaming/abc")],
)
def test_wrong_method_is_405_json(client, method, url):
    response = getattr(client, method)(url, json={"prompt": "x"})
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"]


def test_overload_is_503_with_retry_after(app, client):
    app.extensions["chatstream"].runner.max_streams = 1
    first = submit(client, prompt="x", options={"tokens": 5, "delay_ms": 10_000})
    response = submit(client, prompt="x")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json["error"]["code"] == "overloaded"
    client.delete(first.json["stream_url"])


def test_unexpected_error_is_json_500_without_traceback(app, client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(app.extensions["chatstream"].runner, "start", explode)
    response = submit(client, prompt="x")
    assert response.status_code == 500
    assert "internal detail" not in response.get_data(as_text=True)


def test_page_has_strict_csp(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok", "running": 0, "readers": 0}
    assert client.get("/readyz").json == {"status": "ready"}
