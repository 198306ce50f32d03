"""Access control, the cross-site guard and the per-client limits on a real
``gunicorn -k gevent``, as a public deployment would run them.

Each test talks from its own loopback address (127.0.0.N as the source
address), so the per-address rate limit and stream cap of one test never
touch another's, and the server sees the address a real client would have.
"""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.live.conftest import LIVE_ENV
from tests.support.client import read_events
from tests.support.client import text_of
from tests.support.server import GunicornServer

pytestmark = pytest.mark.live

PASSWORD = "a long shared passphrase"
TOKEN = "live-token-" + "x" * 24
RATE = 10
ENV = {
    **LIVE_ENV,
    "CHATSTREAM_ACCESS_PASSWORD": PASSWORD,
    "CHATSTREAM_API_TOKENS": TOKEN,
    "CHATSTREAM_RATE_LIMIT": f"{RATE}/minute",
    "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "2",
    "CHATSTREAM_PROXY_FIX": "1",  # only to show the Secure cookie behind a TLS proxy
}
SLOW = {"prompt": "x", "options": {"tokens": 5, "delay_ms": 10_000}}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
_addresses = itertools.count(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


def client_from(address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, timeout=30)


@pytest.fixture
def client():
    """A client with a loopback source address no other test uses."""
    with client_from(f"127.0.0.{next(_addresses)}") as c:
        yield c


def assert_json_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def log_in(client, server):
    response = client.post(
        server.url + "/login",
        data={"password": PASSWORD, "next": "/"},
        headers={"Origin": server.url},
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    return response


def test_without_access_every_api_call_is_a_json_401(server, client):
    for method, path in [
        ("POST", "/api/streaming"),
        ("GET", "/api/streaming"),
        ("GET", "/api/streaming/any-id"),
        ("DELETE", "/api/streaming/any-id"),
    ]:
        body = {"json": {"prompt": "x"}} if method == "POST" else {}
        response = client.request(method, server.url + path, **body)
        assert_json_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="chatstream"'


def test_a_browser_is_sent_to_the_login_form(server, client):
    response = client.get(server.url + "/", headers={"Accept": "text/html"})
    assert response.status_code == 302 and response.headers["location"] == "/login?next=/"
    form = client.get(server.url + "/login?next=/")
    assert form.status_code == 200 and 'type="password"' in form.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/static/css/login.css"])
def test_probes_metrics_and_assets_stay_open(server, client, path):
    assert client.get(server.url + path).status_code == 200


def test_login_then_post_stream_and_cancel(server, client):
    cookie = log_in(client, server).headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    same_origin = {"Origin": server.url}
    response = client.post(
        server.url + "/api/streaming",
        headers=same_origin,
        json={"prompt": "x", "options": {"tokens": 3}},
    )
    assert response.status_code == 202
    url = server.url + response.json()["stream_url"]
    assert text_of(read_events(client, url)) == "0 1 2 "  # EventSource sends the cookie
    assert text_of(read_events(client, server.url + "/api/streaming")) == "0 1 2 "
    assert client.get(server.url + "/").status_code == 200
    slow = client.post(server.url + "/api/streaming", json=SLOW, headers=same_origin)
    cancel = client.delete(server.url + slow.json()["stream_url"], headers=same_origin)
    assert cancel.status_code == 200 and cancel.json()["cancelled"] is True
    with client_from("127.0.0.1") as stranger:  # the stream id alone is not enough
        assert_json_error(stranger.get(url), 401, "unauthorized")


def test_wrong_password_is_refused(server, client):
    response = client.post(server.url + "/login", data={"password": "guess"})
    assert response.status_code == 401 and "Wrong password" in response.text
    assert_json_error(
        client.post(server.url + "/api/streaming", json={"prompt": "x"}),
        401,
        "unauthorized",
    )


def test_cookie_is_secure_behind_a_tls_proxy(server, client):
    response = client.post(
        server.url + "/login",
        data={"password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_bearer_token_for_programmatic_clients(server, client):
    response = client.post(
        server.url + "/api/streaming",
        headers=BEARER,
        json={"prompt": "x", "options": {"tokens": 2}},
    )
    assert response.status_code == 202
    url = server.url + response.json()["stream_url"]
    with client_from("127.0.0.1") as other:
        other.headers.update(BEARER)
        assert text_of(read_events(other, url)) == "0 1 "
    wrong = client.post(
        server.url + "/api/streaming",
        json={"prompt": "x"},
        headers={"Authorization": "Bearer " + "y" * 32},
    )
    assert_json_error(wrong, 401, "unauthorized")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


def test_cross_origin_post_is_403(server, client):
    log_in(client, server)
    for origin in ("http://evil.example", "null"):
        response = client.post(server.url + "/api/streaming", json=SLOW, headers={"Origin": origin})
        assert_json_error(response, 403, "cross_origin")
    response = client.post(
        server.url + "/api/streaming",
        json=SLOW,
        headers={**BEARER, "Origin": "http://evil.example"},
    )
    assert_json_error(response, 403, "cross_origin")


def test_same_origin_post_without_origin_header_is_allowed(server, client):
    """curl and SDK clients send no ``Origin``; they are allowed because they
    carry no victim's cookie (no CSRF), while every browser sends ``Origin`` on
    a cross-origin POST, so a forged cross-site request is always recognised."""
    response = client.post(
        server.url + "/api/streaming",
        headers=BEARER,
        json={"prompt": "x", "options": {"tokens": 1}},
    )
    assert response.status_code == 202
    browser_like = client.post(
        server.url + "/api/streaming",
        json={"prompt": "x"},
        headers={**BEARER, "Sec-Fetch-Site": "cross-site"},
    )
    assert_json_error(browser_like, 403, "cross_origin")


def test_per_client_stream_cap_is_a_json_429(server, client):
    client.headers.update(BEARER)
    urls = []
    try:
        for _ in range(2):
            response = client.post(server.url + "/api/streaming", json=SLOW)
            assert response.status_code == 202
            urls.append(server.url + response.json()["stream_url"])
        refused = client.post(server.url + "/api/streaming", json=SLOW)
        assert_json_error(refused, 429, "too_many_streams")
        assert int(refused.headers["retry-after"]) >= 1
        with client_from(f"127.0.0.{next(_addresses)}") as neighbour:  # its own cap
            neighbour.headers.update(BEARER)
            response = neighbour.post(server.url + "/api/streaming", json=SLOW)
            assert response.status_code == 202
            urls.append(server.url + response.json()["stream_url"])
    finally:
        for url in urls:
            client.delete(url)


def test_rate_limit_is_a_json_429_with_retry_after(server, client):
    client.headers.update(BEARER)
    for _ in range(RATE):
        response = client.post(
            server.url + "/api/streaming",
            json={"prompt": "x", "options": {"tokens": 1}},
        )
        assert response.status_code == 202
        read_events(client, server.url + response.json()["stream_url"])  # ends: frees the slot
    limited = client.post(server.url + "/api/streaming", json={"prompt": "x"})
    assert_json_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 61
    # Reads are never limited: a reconnecting EventSource is not refused.
    assert client.get(server.url + "/healthz").status_code == 200
    with client_from(f"127.0.0.{next(_addresses)}") as other:  # another address, own budget
        other.headers.update(BEARER)
        assert other.post(server.url + "/api/streaming", json={"prompt": "x"}).status_code == 202


@pytest.mark.redis
def test_rate_limit_is_shared_by_instances_through_redis(tmp_path):
    from tests.support.redis_server import RedisServer

    with RedisServer() as redis_server:
        env = {
            **LIVE_ENV,
            "CHATSTREAM_REDIS_URL": redis_server.url,
            "CHATSTREAM_RATE_LIMIT": "3/minute",
        }
        with (
            GunicornServer(env, log_dir=tmp_path) as a,
            GunicornServer(env, log_dir=tmp_path) as b,
        ):
            with client_from(f"127.0.0.{next(_addresses)}") as client:
                codes = [
                    client.post(srv.url + "/api/streaming", json={"prompt": ""}).status_code
                    for srv in (a, b, a)
                ]
                assert codes == [400, 400, 400]  # refused prompts still count
                for srv in (b, a):
                    response = client.post(srv.url + "/api/streaming", json={"prompt": "x"})
                    assert_json_error(response, 429, "rate_limited")
                    assert int(response.headers["retry-after"]) >= 1
