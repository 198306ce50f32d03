"""Hostile input on a real ``gunicorn -k gevent`` (issue 9, items 5 and 6).

The server runs as ``make serve`` does (``HOST=127.0.0.1``: the default
allow-list is the loopback names), with a password and an API token, so the
open ``POST /login`` is exposed as on a public deployment. Each test prints
the status codes it saw; on the old code they were 202/500s.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.server import GunicornServer

PASSWORD = "a long shared passphrase"
TOKEN = "fault-token-" + "x" * 24
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ENV = {
    "HOST": "127.0.0.1",  # what `make serve` sets; gunicorn binds -b anyway
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_DEMO_DELAY_MS": "0",
    "CHATSTREAM_ACCESS_PASSWORD": PASSWORD,
    "CHATSTREAM_API_TOKENS": TOKEN,
}
DEEP = "[" * 1000 + "]" * 1000
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def running(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["running"])


def test_dns_rebinding_is_refused(server, client):
    """Host and Origin both ``evil.example:<port>``: POST, GET and DELETE refused."""
    evil = f"evil.example:{server.port}"
    headers = {**BEARER, "Host": evil, "Origin": f"http://{evil}"}
    post = client.post("/api/streaming", json={"prompt": "hi"}, headers=headers)
    mine = client.post("/api/streaming", json={"prompt": "hi"}, headers=BEARER)
    assert mine.status_code == 202
    url = mine.json()["stream_url"]
    get = client.get(url, headers=headers)
    delete = client.delete(url, headers=headers)
    health = client.get("/healthz", headers={"Host": evil})
    print(
        f"\nDNS rebinding ({evil}): POST {post.status_code}, GET {get.status_code}, "
        f"DELETE {delete.status_code}, /healthz {health.status_code}"
    )
    for response in (post, get, delete, health):
        assert_json_error(response, 400, "untrusted_host")
    assert "CHATSTREAM_ALLOWED_HOSTS" in post.json()["error"]["message"]


def test_loopback_names_are_served(server, client):
    statuses = {}
    for host in ("127.0.0.1", "localhost", "app.localhost"):
        response = client.post(
            "/api/streaming",
            json={"prompt": "hi", "options": {"tokens": 2}},
            headers={**BEARER, "Host": f"{host}:{server.port}"},
        )
        statuses[host] = response.status_code
    print(f"\nloopback hosts: {statuses}")
    assert set(statuses.values()) == {202}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/streaming", '{"prompt": "hi", "options": ' + DEEP + "}"),
        ("/api/streaming", "[" * 100_000),
        ("/login", '{"password": ' + DEEP + "}"),
        ("/login", DEEP),
    ],
    ids=["prompt-1000", "prompt-100000-open", "login-1000", "login-bare-1000"],
)
def test_deep_nesting_is_a_json_400(client, path, body):
    headers = {**JSON, **BEARER} if path == "/api/streaming" else JSON
    response = client.post(path, content=body, headers=headers)
    print(f"\n{path} nested {body.count('[')} levels: {response.status_code}")
    assert_json_error(response, 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        '{"\\ud800": "hi"}',
        '{"prompt": "hi \\udfff there"}',
        '{"messages": [{"role": "user", "content": "\\ud800"}]}',
        '{"prompt": "hi", "model": "\\ud800"}',
    ],
    ids=["key", "prompt", "message", "model"],
)
def test_lone_surrogates_are_refused_at_post(client, body):
    before = running(client)
    response = client.post("/api/streaming", content=body, headers={**JSON, **BEARER})
    print(f"\nlone surrogate in {body[:30]!r}: {response.status_code}")
    assert_json_error(response, 400, "invalid_json")
    assert running(client) <= before  # no generation was started


def test_a_surrogate_pair_is_just_text(client):
    response = client.post(
        "/api/streaming", content='{"prompt": "hi \\ud83d\\ude00"}', headers={**JSON, **BEARER}
    )
    assert response.status_code == 202


def raw_post(server, body: bytes) -> bytes:
    """Send a hand-made chunked POST; :returns: the whole answer (bounded)."""
    head = (
        f"POST /api/streaming HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 65_536:
            data = sock.recv(65_536)
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # not a hex size
        b"5\r\n{}\r\n0\r\n\r\n",  # size longer than the data, no terminator
        b"2\r\n{}XX0\r\n\r\n",  # chunk without its CRLF
    ],
    ids=["bad-size", "short-chunk", "no-terminator"],
)
def test_malformed_chunked_body_is_a_json_400(server, body):
    answer = raw_post(server, body)
    status_line = answer.split(b"\r\n", 1)[0]
    print(f"\nchunked body {body!r}: {status_line.decode()}")
    assert status_line.startswith(b"HTTP/1.1 400"), answer[:500]
    assert b"application/json" in answer
    assert b'"malformed_body"' in answer or b'"invalid_json"' in answer
