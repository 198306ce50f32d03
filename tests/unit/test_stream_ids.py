"""Stream-scoped event ids and the id-less contract (issue 10), through Flask's test client.

One test client is one browser: its cookie jar is shared, like two tabs.
"""

from __future__ import annotations

import json

import pytest
from itsdangerous import URLSafeTimedSerializer

from chatstream import event_ids
from chatstream import sse


def blocks(body: bytes) -> list[dict[str, str]]:
    out = []
    for block in body.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if lines:
            out.append(dict(line.split(": ", 1) for line in lines))
    return out


def tokens(body: bytes) -> list[str]:
    return [json.loads(b["data"])["token"] for b in blocks(body) if b.get("event") == "newToken"]


def post(client, count=5, **headers):
    response = client.post(
        "/api/streaming", json={"prompt": "x", "options": {"tokens": count}}, headers=headers
    )
    return response


def numbers(count, start=0):
    return [f"{i} " for i in range(start, count)]


def test_every_id_names_its_stream_and_position(client):
    stream_id = post(client).json["id"]
    ids = [b["id"] for b in blocks(client.get(f"/api/streaming/{stream_id}").data)]
    tag = event_ids.tag(stream_id)
    assert ids == [f"{tag}.{seq}" for seq in range(1, 7)]
    assert len(tag) == 6 and tag not in stream_id


def test_id_overhead_is_seven_bytes_per_token():
    scope = event_ids.scope("x" * 32)
    for seq in (1, 99, 12345):
        plain, scoped = sse.encode_token("7 ", seq), sse.encode_token("7 ", seq, scope)
        assert len(scoped) - len(plain) == 7


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("12", (None, 12)), ("AbC_-9.3", ("AbC_-9", 3)), (" AbC_-9.3 ", ("AbC_-9", 3))],
)
def test_event_id_parse(raw, parsed):
    assert event_ids.parse(raw) == parsed


@pytest.mark.parametrize("raw", ["", "abc", "AbC.3", "AbC_-9.", "AbC_-9.-1", "AbC_-99.3", "1.5"])
def test_event_id_parse_rejects(raw):
    assert event_ids.parse(raw) is None


def test_event_streams_say_utf8(client):
    response = post(client, Accept="text/event-stream")
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    stream_id = post(client).json["id"]
    get = client.get(f"/api/streaming/{stream_id}")
    assert get.headers["Content-Type"] == "text/event-stream; charset=utf-8"


def test_204_has_no_body_and_no_content_type(client):
    stream_id = post(client, 2).json["id"]
    last = blocks(client.get(f"/api/streaming/{stream_id}").data)[-1]["id"]
    done = client.get(f"/api/streaming/{stream_id}", headers={"Last-Event-ID": last})
    assert done.status_code == 204 and done.data == b""
    assert "Content-Type" not in done.headers


def test_retry_rides_on_the_first_event(client):
    stream_id = post(client, 3).json["id"]
    body = client.get(f"/api/streaming/{stream_id}").data
    first = blocks(body)[0]
    assert first["retry"] == "1000" and first["event"] == "newToken"
    assert body.count(b"retry:") == 1


def test_post_form_names_its_stream(client):
    response = post(client, 3, Accept="text/event-stream")
    stream_id = response.headers["X-Stream-Id"]
    url = f"/api/streaming/{stream_id}"
    assert response.headers["Content-Location"] == url == response.headers["Location"]
    assert tokens(response.data) == numbers(3)
    assert tokens(client.get(url).data) == numbers(3)  # readable again by its URL
    accepted = post(client)
    assert accepted.headers["X-Stream-Id"] == accepted.json["id"]


def test_post_with_last_event_id_resumes_instead_of_generating(client, app):
    first = post(client, 6, Accept="text/event-stream")
    stream_id = first.headers["X-Stream-Id"]
    third = blocks(first.data)[2]["id"]
    started = len(app.extensions["chatstream"].runner.running)
    again = post(client, 6, Accept="text/event-stream", **{"Last-Event-ID": third})
    assert again.headers["X-Stream-Id"] == stream_id
    assert tokens(again.data) == numbers(6, 3)
    assert len(app.extensions["chatstream"].runner.running) == started


def test_post_with_last_event_id_of_another_session_is_404(client, app):
    first = post(client, 3, Accept="text/event-stream")
    foreign = blocks(first.data)[0]["id"]
    other = app.test_client()
    response = post(other, 3, Accept="text/event-stream", **{"Last-Event-ID": foreign})
    assert response.status_code == 404


def test_splice_two_tabs_a_reconnect_resumes_tab_a(client):
    """Tab A reads 2 tokens and is cut; tab B POSTs; A reconnects with its id."""
    client.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 6, "delay_ms": 20}})
    tab_a = client.get("/api/streaming", buffered=False)
    a_id = tab_a.headers["X-Stream-Id"]
    head = b""
    for chunk in tab_a.response:  # bounded by the stream's end
        head += chunk
        if len(tokens(head)) >= 2:
            break
    tab_a.close()
    seen = blocks(head)
    assert len(tokens(head)) < 6
    post(client, 3)  # tab B, same cookie, a shorter answer
    resumed = client.get("/api/streaming", headers={"Last-Event-ID": seen[-1]["id"]})
    assert resumed.headers["X-Stream-Id"] == a_id
    assert tokens(head) + tokens(resumed.data) == numbers(6)


def test_first_get_takes_the_oldest_unclaimed_stream(client):
    a = post(client, 2).json["id"]
    b = post(client, 3).json["id"]
    first = client.get("/api/streaming")
    second = client.get("/api/streaming")
    assert (first.headers["X-Stream-Id"], second.headers["X-Stream-Id"]) == (a, b)
    assert tokens(first.data) == numbers(2) and tokens(second.data) == numbers(3)
    # Everything claimed: the latest, as the seed's contract did (a reload).
    assert client.get("/api/streaming").headers["X-Stream-Id"] == b


def test_id_less_get_with_a_foreign_tag_is_404(client, app):
    other = app.test_client()
    foreign = post(other, 2).json["id"]
    post(client, 2)
    raw = f"{event_ids.tag(foreign)}.1"
    assert client.get("/api/streaming", headers={"Last-Event-ID": raw}).status_code == 404


def test_url_form_rejects_another_streams_tag(client):
    a = post(client, 3).json["id"]
    b = post(client, 3).json["id"]
    response = client.get(f"/api/streaming/{a}", headers={"Last-Event-ID": f"{event_ids.tag(b)}.1"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_last_event_id"


def test_plain_integer_ids_still_resume_both_urls(client):
    a = post(client, 4).json["id"]
    assert tokens(client.get(f"/api/streaming/{a}", headers={"Last-Event-ID": "2"}).data) == [
        "2 ",
        "3 ",
    ]
    assert tokens(client.get("/api/streaming", headers={"Last-Event-ID": "3"}).data) == ["3 "]


def test_session_keeps_its_recent_streams(client, app):
    from chatstream.session_streams import RECENT

    ids = [post(client, 1).json["id"] for _ in range(RECENT + 2)]
    cookie = client.get_cookie("chatstream_session").value
    serializer = app.extensions["chatstream"].session_interface.get_signing_serializer(app)
    assert serializer.loads(cookie)["streams"] == ids[-RECENT:]


def test_a_response_never_iterated_releases_its_reader(client, app):
    readers = app.extensions["chatstream"].readers
    stream_id = post(client, 3).json["id"]
    before = readers.count
    response = client.get(f"/api/streaming/{stream_id}", buffered=False)
    assert readers.count == before + 1
    response.close()
    assert readers.count == before


def test_a_stream_this_session_read_is_claimed_even_if_the_store_forgets(client, app, monkeypatch):
    """The Redis store forgets that a finished stream was read on its owner."""
    from chatstream.store import Presence

    store = app.extensions["chatstream"].store
    monkeypatch.setattr(
        store, "presence_many", lambda ids: {i: Presence(0, False, 0.0) for i in ids}
    )
    post(client, 2)
    assert tokens(client.get("/api/streaming").data) == numbers(2)
    second = post(client, 3).json["id"]
    response = client.get("/api/streaming")
    assert response.headers["X-Stream-Id"] == second and tokens(response.data) == numbers(3)


def test_the_post_form_claims_its_stream(client):
    post(client, 2, Accept="text/event-stream")
    b = post(client, 3).json["id"]
    assert client.get("/api/streaming").headers["X-Stream-Id"] == b


def test_a_cookie_in_flasks_tagged_json_still_loads(client, app):
    """Sessions are written as plain JSON now; cookies issued before still resume."""
    from flask.json.tag import TaggedJSONSerializer

    stream_id = post(client, 2).json["id"]
    serializer = app.extensions["chatstream"].session_interface.get_signing_serializer(app)
    old_style = URLSafeTimedSerializer(
        app.secret_key,
        salt=serializer.salt,
        serializer=TaggedJSONSerializer(),
        signer_kwargs=serializer.signer_kwargs,
    ).dumps({"streams": [stream_id], "claimed": [], "_permanent": True})
    fresh = app.test_client()
    fresh.set_cookie("chatstream_session", old_style)
    assert tokens(fresh.get("/api/streaming").data) == numbers(2)
    assert serializer.loads(old_style) == {
        "streams": [stream_id],
        "claimed": [],
        "_permanent": True,
    }


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream", True),
        ("TEXT/EVENT-STREAM", True),
        ("text/*", True),
        ("application/json, text/event-stream;q=0.5", False),
        ("*/*", False),
        # No ``text/`` in the header, yet JSON is ruled out or ranked lower:
        ("*/*, application/json;q=0.5", True),
        ("application/json;q=0, */*", True),
        ("application/json", False),
        ("", False),
    ],
)
def test_the_post_streams_only_when_accept_prefers_it(client, accept, streams):
    response = post(client, 2, Accept=accept)
    if streams:
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        assert tokens(response.data) == numbers(2)
    else:
        assert response.status_code == 202
        assert response.json["id"]


def test_flasks_own_session_still_works_in_the_standalone_app(app):
    """The standalone app caches Flask's session serializer; host code may use the session."""
    from flask import session

    @app.get("/count")
    def count():
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    browser = app.test_client()
    assert [browser.get("/count").json["n"] for _ in range(3)] == [1, 2, 3]
    app.secret_key = "rotated"  # a new key: the old cookie no longer verifies
    assert browser.get("/count").json["n"] == 1
