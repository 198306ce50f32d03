"""Per-client limits: the POST rate limit (chatstream/ratelimit.py, Flask-Limiter)
and the cap on running streams per client address (Runner.start ``client=``)."""

from __future__ import annotations

import pytest

from chatstream import config
from chatstream import create_app
from chatstream.adapters.demo import DemoFactory
from chatstream.concurrency import Driver
from chatstream.errors import ConfigError
from chatstream.errors import TooManyRequests
from chatstream.generation import Runner
from chatstream.ratelimit import _storage_uri
from chatstream.store.memory import MemoryStreamStore
from tests.conftest import UNIT_CONFIG
from tests.support.client import wait_until

BASE = dict(UNIT_CONFIG)
QUICK = {"prompt": "x", "options": {"tokens": 1}}
SLOW = {"prompt": "x", "options": {"tokens": 5, "delay_ms": 10_000}}
PROMPT = [{"role": "user", "content": "hi"}]


def make_app(**overrides):
    return create_app({**BASE, **overrides})


def from_address(address):
    return {"environ_base": {"REMOTE_ADDR": address}}


def assert_429(response, code):
    assert response.status_code == 429, response.data
    assert response.json["error"]["code"] == code and response.json["error"]["message"]
    return int(response.headers["Retry-After"])


# -- the POST rate limit ---------------------------------------------------------


def test_over_the_limit_is_a_json_429_with_retry_after():
    client = make_app(RATE_LIMIT="3/minute").test_client()
    for _ in range(3):
        assert client.post("/api/streaming", json=QUICK).status_code == 202
    retry_after = assert_429(client.post("/api/streaming", json=QUICK), "rate_limited")
    assert 1 <= retry_after <= 61  # when the oldest of the three leaves the window


def test_the_default_is_60_a_minute():
    app = make_app()
    assert app.config["CHATSTREAM_RATE_LIMIT"] == "60/minute"
    client = app.test_client()
    for _ in range(60):
        assert client.post("/api/streaming", json={"prompt": ""}).status_code == 400
    assert_429(client.post("/api/streaming", json=QUICK), "rate_limited")


def test_only_post_counts():
    client = make_app(RATE_LIMIT="1/minute").test_client()
    url = client.post("/api/streaming", json=SLOW).json["stream_url"]
    assert_429(client.post("/api/streaming", json=QUICK), "rate_limited")
    for _ in range(5):  # reconnecting readers, probes and cancels are never refused
        with client.get(url, buffered=False) as stream:
            assert stream.status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.delete(url).status_code == 200


def test_refused_posts_count_too():
    """Bad requests and wrong passwords spend the budget: no free guessing."""
    client = make_app(RATE_LIMIT="2/minute", ACCESS_PASSWORD="pw").test_client()
    assert client.post("/login", data={"password": "guess"}).status_code == 401
    assert client.post("/api/streaming", json={"prompt": "x"}).status_code == 401
    assert_429(client.post("/login", data={"password": "pw"}), "rate_limited")


def test_each_address_has_its_own_budget():
    client = make_app(RATE_LIMIT="1/minute").test_client()
    assert client.post("/api/streaming", json=QUICK, **from_address("10.0.0.1")).status_code == 202
    assert_429(
        client.post("/api/streaming", json=QUICK, **from_address("10.0.0.1")),
        "rate_limited",
    )
    assert client.post("/api/streaming", json=QUICK, **from_address("10.0.0.2")).status_code == 202


def test_behind_proxy_fix_the_key_is_the_forwarded_client():
    client = make_app(RATE_LIMIT="1/minute", PROXY_FIX="1").test_client()
    for address in ("203.0.113.1", "203.0.113.2"):
        headers = {"X-Forwarded-For": address}
        assert client.post("/api/streaming", json=QUICK, headers=headers).status_code == 202


def test_without_proxy_fix_a_forged_forwarded_for_buys_nothing():
    client = make_app(RATE_LIMIT="1/minute").test_client()
    assert client.post("/api/streaming", json=QUICK).status_code == 202
    headers = {"X-Forwarded-For": "203.0.113.9"}
    assert_429(client.post("/api/streaming", json=QUICK, headers=headers), "rate_limited")


@pytest.mark.parametrize("value", ["off", "0", 0, False, "OFF"])
def test_off_disables_the_limiter(value):
    app = make_app(RATE_LIMIT=value)
    assert app.config["CHATSTREAM_RATE_LIMIT"] == "off" and "limiter" not in app.extensions
    client = app.test_client()
    for _ in range(100):
        assert client.post("/api/streaming", json={"prompt": ""}).status_code == 400


@pytest.mark.parametrize("value", ["30 per minute", "10/second;500/day", "5 per 2 hours"])
def test_rate_notation(value):
    assert make_app(RATE_LIMIT=value).config["CHATSTREAM_RATE_LIMIT"] == value


@pytest.mark.parametrize("value", ["fast", "10/fortnight", "-1/minute", "minute", 7])
def test_bad_rate_stops_startup_naming_the_variable(value):
    with pytest.raises(ConfigError, match="CHATSTREAM_RATE_LIMIT="):
        make_app(RATE_LIMIT=value)


@pytest.mark.parametrize(
    ("redis_url", "uri"),
    [
        (None, "memory://"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://:pw@cache:6380/1", "rediss://:pw@cache:6380/1"),
        ("unix:///run/redis.sock", "redis+unix:///run/redis.sock"),
    ],
)
def test_counters_live_in_redis_when_it_is_configured(redis_url, uri):
    assert _storage_uri(redis_url) == uri


@pytest.mark.redis
def test_workers_sharing_redis_share_one_budget():
    from tests.support.redis_server import RedisServer

    with RedisServer() as redis_server:
        workers = [
            make_app(RATE_LIMIT="2/minute", REDIS_URL=redis_server.url).test_client()
            for _ in range(2)
        ]
        assert workers[0].post("/api/streaming", json={"prompt": ""}).status_code == 400
        assert workers[1].post("/api/streaming", json={"prompt": ""}).status_code == 400
        assert_429(workers[0].post("/api/streaming", json=QUICK), "rate_limited")
        assert_429(workers[1].post("/api/streaming", json=QUICK), "rate_limited")
        keys = redis_server.client().keys("LIMITS:*")
        assert keys and all(b"chatstream" in key for key in keys)


# -- running streams per client ---------------------------------------------------


def test_per_client_stream_cap_is_a_json_429():
    app = make_app(RATE_LIMIT="off", MAX_STREAMS_PER_CLIENT=2)
    client = app.test_client()
    urls = [client.post("/api/streaming", json=SLOW).json["stream_url"] for _ in range(2)]
    assert assert_429(client.post("/api/streaming", json=SLOW), "too_many_streams") >= 1
    # Another address is not affected.
    assert client.post("/api/streaming", json=QUICK, **from_address("10.0.0.7")).status_code == 202
    # A cancelled stream frees its slot once its generation has ended.
    client.delete(urls[0])
    runner = app.extensions["chatstream"].runner
    wait_until(lambda: runner.per_client.get("127.0.0.1") == 1)
    assert client.post("/api/streaming", json=SLOW).status_code == 202
    for url in urls[1:]:
        client.delete(url)


def test_default_cap_is_8_and_0_means_no_cap():
    assert make_app().config["CHATSTREAM_MAX_STREAMS_PER_CLIENT"] == 8
    client = make_app(RATE_LIMIT="off", MAX_STREAMS_PER_CLIENT=0).test_client()
    urls = [client.post("/api/streaming", json=SLOW).json["stream_url"] for _ in range(12)]
    for url in urls:
        assert client.delete(url).json["cancelled"] is True


def make_runner(**overrides):
    values = config.defaults()
    values.update({"ADAPTER": "demo", "DEMO_DELAY_MS": 0, "SWEEP_S": 0.02, **overrides})
    config.validate(values)
    driver = Driver("threading")
    store = MemoryStreamStore(driver, ttl_s=60)
    return Runner(store, DemoFactory(values), driver, values)


def test_runner_counts_per_client_and_forgets_finished_ones():
    runner = make_runner(MAX_STREAMS_PER_CLIENT=1)
    slow = {"tokens": 5, "delay_ms": 10_000}
    first = runner.start(PROMPT, options=slow, client="a")
    with pytest.raises(TooManyRequests) as info:
        runner.start(PROMPT, client="a")
    assert info.value.code == "too_many_streams" and info.value.headers["Retry-After"]
    other = runner.start(PROMPT, options=slow, client="b")
    unnamed = [runner.start(PROMPT, options=slow) for _ in range(3)]  # no client: no cap
    streams = (first, other, *unnamed)
    for stream_id in streams:
        runner.cancel(stream_id)
    wait_until(lambda: all(runner.store.status(s)[1] for s in streams))  # terminal written
    assert runner.per_client == {}  # nothing leaks, however the stream ended


def test_a_failing_generation_frees_its_slot():
    runner = make_runner(MAX_STREAMS_PER_CLIENT=1)
    done = runner.start(PROMPT, options={"tokens": 1}, client="a")
    wait_until(lambda: runner.store.status(done)[1])
    runner.factory = _failing_factory()
    stream_id = runner.start(PROMPT, client="a")
    # Wait for the terminal event: the failure is logged (with a traceback,
    # which 3.11 formats with ast.parse) before it is written.
    wait_until(lambda: runner.store.status(stream_id)[1])
    assert runner.per_client == {}


def _failing_factory():
    class Failing:
        name = "failing"

        def check_options(self, options):
            return options

        def __call__(self):
            class Adapter:
                def stream(self, request):
                    raise RuntimeError("boom")
                    yield  # pragma: no cover

                def close(self):
                    pass

            return Adapter()

    return Failing()


# -- failed credentials (FailedAuth) --------------------------------------------


def test_auth_failure_limit_default_and_validation():
    assert make_app().config["CHATSTREAM_AUTH_FAILURE_LIMIT"] == "10/minute;100/day"
    assert make_app(AUTH_FAILURE_LIMIT="OFF").config["CHATSTREAM_AUTH_FAILURE_LIMIT"] == "off"
    with pytest.raises(ConfigError, match="CHATSTREAM_AUTH_FAILURE_LIMIT"):
        make_app(AUTH_FAILURE_LIMIT="lots")


def test_failed_auth_counts_per_key_and_every_window():
    from chatstream.ratelimit import FailedAuth

    failures = FailedAuth("2/minute;3/day", None)
    for _ in range(2):
        failures.check("a")
        failures.record("a")
    with pytest.raises(TooManyRequests) as refused:
        failures.check("a")
    assert refused.value.code == "too_many_failures"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 61
    failures.check("b")


def test_failed_auth_counts_in_memory_when_redis_fails(caplog):
    from chatstream.ratelimit import FailedAuth
    from tests.support.server import free_port

    failures = FailedAuth("1/minute", f"redis://127.0.0.1:{free_port()}/0")
    failures.check("a")
    failures.record("a")
    with pytest.raises(TooManyRequests):
        failures.check("a")  # never a free pass while Redis is down
    assert "counting in this worker" in caplog.text
