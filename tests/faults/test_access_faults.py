"""Access control under attack (issue 9, item 7), on a real ``gunicorn -k gevent``.

* A guesser of bearer tokens (or passwords) gets ``CHATSTREAM_AUTH_FAILURE_LIMIT``
  answers per address (default ``10/minute;100/day``), then ``429``s: before,
  every guess was answered (about 700-900 a second from one client).
* A cookie saved before ``POST /logout`` is refused after it, on this
  instance and, through Redis, on every other one; with Redis down it is
  refused too (``503``), never let through.

Each test prints the figure it measures. Every client has its own loopback
source address (127.0.0.N), so the per-address budgets never mix.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

import httpx
import pytest

from tests.live.conftest import LIVE_ENV
from tests.support.redis_server import RedisServer
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.live]

PASSWORD = "a long shared passphrase"
TOKEN = "fault-token-" + "x" * 24
ENV = {
    **LIVE_ENV,
    "CHATSTREAM_ACCESS_PASSWORD": PASSWORD,
    "CHATSTREAM_API_TOKENS": TOKEN,
    # Left at its default: CHATSTREAM_AUTH_FAILURE_LIMIT (10/minute;100/day).
}
GUESSES = 200  # bounded in count; each answer comes at once
_addresses = itertools.count(60)


def client_from(address: str | None = None) -> httpx.Client:
    address = address or f"127.0.0.{next(_addresses)}"
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


def guess_tokens(client: httpx.Client, url: str, count: int) -> Counter[int]:
    codes: Counter[int] = Counter()
    deadline = time.monotonic() + 60
    for n in range(count):
        assert time.monotonic() < deadline, f"only {n} guesses in 60 s"
        wrong = {"Authorization": f"Bearer guess-{n:026d}"}
        codes[client.get(url + "/api/streaming/some-stream", headers=wrong).status_code] += 1
    return codes


def log_in(client: httpx.Client, url: str, password: str = PASSWORD) -> httpx.Response:
    return client.post(url + "/login", json={"password": password})


def test_wrong_bearer_tokens_are_rate_limited(server):
    with client_from() as guesser:
        started = time.monotonic()
        codes = guess_tokens(guesser, server.url, GUESSES)
        rate = GUESSES / (time.monotonic() - started)
        right = guesser.get(
            server.url + "/api/streaming", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    print(
        f"\n{GUESSES} wrong bearer tokens ({rate:.0f}/s): "
        f"{codes[401]} answered 401, {codes[429]} refused 429"
    )
    assert codes == {401: 10, 429: GUESSES - 10}
    assert right.status_code == 429  # over the budget even a right token is not compared
    assert right.json()["error"]["code"] == "too_many_failures"
    with client_from() as neighbour:  # another address is not locked out
        ok = neighbour.get(
            server.url + "/api/streaming", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status_code == 404


def test_wrong_passwords_and_tokens_share_the_budget(server):
    with client_from() as guesser:
        codes = Counter(log_in(guesser, server.url, f"guess {n}").status_code for n in range(5))
        codes += guess_tokens(guesser, server.url, 5)
        refused = log_in(guesser, server.url)  # the right password, from a spent address
    print(
        f"\n5 wrong passwords + 5 wrong tokens: {dict(codes)}; "
        f"then the right password: {refused.status_code}"
    )
    assert codes == {401: 10}
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_a_cookie_saved_before_logout_is_refused_after_it(server):
    with client_from() as browser:
        assert log_in(browser, server.url).status_code == 200
        saved = dict(browser.cookies)
        assert browser.get(server.url + "/api/streaming/unknown-id").status_code == 404
        assert browser.post(server.url + "/logout", json={}).status_code == 200
    with client_from() as thief:
        thief.cookies.update(saved)
        replay = thief.get(server.url + "/api/streaming/unknown-id")
    print(f"\nsaved cookie after logout: {replay.status_code}")
    assert replay.status_code == 401


@pytest.mark.redis
def test_logout_and_the_failure_budget_hold_across_instances_through_redis(tmp_path):
    with RedisServer() as redis_server:
        env = {**ENV, "CHATSTREAM_REDIS_URL": redis_server.url}
        with (
            GunicornServer(env, log_dir=tmp_path) as a,
            GunicornServer(env, log_dir=tmp_path) as b,
        ):
            with client_from() as browser:
                assert log_in(browser, a.url).status_code == 200
                saved = dict(browser.cookies)
                assert browser.get(b.url + "/api/streaming/unknown-id").status_code == 404
                assert browser.post(a.url + "/logout", json={}).status_code == 200
            with client_from() as thief:
                thief.cookies.update(saved)
                on_b = thief.get(b.url + "/api/streaming/unknown-id").status_code
            with client_from() as guesser:
                codes = guess_tokens(guesser, a.url, 6) + guess_tokens(guesser, b.url, 6)
            print(
                f"\nsaved cookie on the other instance: {on_b}; 12 guesses over two: {dict(codes)}"
            )
            assert on_b == 401
            assert codes == {401: 10, 429: 2}

            # Redis down: the saved cookie is not let through (fail closed).
            with client_from() as other:
                assert log_in(other, b.url).status_code == 200
                redis_server.stop()
                down = other.get(b.url + "/api/streaming/unknown-id")
            assert down.status_code == 503, down.text
