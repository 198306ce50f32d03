"""The openai adapter against a local server speaking OpenAI's streaming wire format."""

from __future__ import annotations

import pytest

from chatstream import config
from chatstream.adapters.base import Finish
from chatstream.adapters.base import GenerationRequest
from chatstream.adapters.openai_chat import OpenAIChatFactory
from chatstream.adapters.upstream_errors import UpstreamProtocolError
from chatstream.adapters.upstream_http import LlhttpTransport
from chatstream.errors import UpstreamAuthError
from chatstream.errors import UpstreamBadRequest
from chatstream.errors import UpstreamDropped
from chatstream.errors import UpstreamError
from chatstream.errors import UpstreamRateLimited
from chatstream.errors import UpstreamTimeout
from chatstream.errors import UpstreamUnavailable
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import drop_after
from tests.fakes.openai_server import hostile
from tests.fakes.openai_server import http_error
from tests.fakes.openai_server import stall
from tests.fakes.openai_server import stream_error_after
from tests.fakes.openai_server import tokens

REQUEST = GenerationRequest([{"role": "user", "content": "hi there"}], "gpt-test")
FAST_RETRY = {"retry-after-ms": "10"}


@pytest.fixture(params=["llhttp", "httpx"])
def fake(request):
    """The fake upstream; every test runs over both HTTP transports."""
    with FakeOpenAI() as server:
        server.http = request.param
        yield server


def make_factory(fake, **overrides):
    values = config.defaults()
    values.update(
        {
            "ADAPTER": "openai",
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fake.base_url,
            "MODEL": "gpt-test",
            "OPENAI_HTTP": fake.http,
            **overrides,
        }
    )
    config.validate(values)
    return OpenAIChatFactory(values)


def test_streams_deltas_then_finish_with_usage(fake):
    fake.push(tokens(["Hel", "lo", " wor", "ld\n", "é😀"], finish_reason="length"))
    items = list(make_factory(fake)().stream(REQUEST))
    assert items[:-1] == ["Hel", "lo", " wor", "ld\n", "é😀"]
    assert items[-1] == Finish(
        "length", {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    )
    sent = fake.requests[-1]
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "gpt-test"
    assert sent.body["messages"] == [{"role": "user", "content": "hi there"}]
    assert sent.headers["authorization"] == "Bearer sk-test"


def test_rate_limit_is_retried_by_the_sdk_then_succeeds(fake):
    fake.push(
        http_error(429, "requests", "slow down", code="rate_limit_exceeded", headers=FAST_RETRY),
        tokens(["ok"]),
    )
    assert list(make_factory(fake)().stream(REQUEST))[0] == "ok"
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("scenario", "error", "retries"),
    [
        (
            lambda: [http_error(401, "invalid_request_error", "bad key", code="invalid_api_key")],
            UpstreamAuthError,
            0,
        ),
        (
            lambda: [http_error(429, "requests", "slow down", headers=FAST_RETRY)] * 3,
            UpstreamRateLimited,
            2,
        ),
        (
            lambda: [http_error(500, "server_error", "Oops", headers=FAST_RETRY)] * 3,
            UpstreamUnavailable,
            2,
        ),
        (lambda: [http_error(400, "invalid_request_error", "bad model")], UpstreamBadRequest, 0),
    ],
)
def test_http_errors_map_to_upstream_errors(fake, scenario, error, retries):
    fake.push(*scenario())
    with pytest.raises(error) as info:
        list(make_factory(fake)().stream(REQUEST))
    assert type(info.value) is error and info.value.message
    assert len(fake.requests) == retries + 1


def test_connection_refused_is_unavailable(fake):
    factory = make_factory(fake, OPENAI_MAX_RETRIES=0)
    fake.stop()
    with pytest.raises(UpstreamUnavailable):
        list(factory().stream(REQUEST))


def test_drop_mid_stream_after_tokens(fake):
    fake.push(drop_after(2, ["a", "b", "c"]))
    got = []
    with pytest.raises(UpstreamDropped):
        for item in make_factory(fake, OPENAI_MAX_RETRIES=0)().stream(REQUEST):
            got.append(item)
    assert got == ["a", "b"]


def test_error_object_in_stream(fake):
    fake.push(stream_error_after(1, "model overloaded", ["a", "b"]))
    got = []
    with pytest.raises(UpstreamError, match="model overloaded") as info:
        for item in make_factory(fake)().stream(REQUEST):
            got.append(item)
    assert got == ["a"] and type(info.value) is UpstreamError


def test_a_compressed_body_is_refused_not_read_as_garbage(fake):
    # chatstream asks for Accept-Encoding: identity; this upstream gzips anyway.
    # Read raw, the body held no event and ended: an empty answer called "stop".
    fake.push(hostile("gzip_body"))
    with pytest.raises(UpstreamProtocolError, match="gzip-encoded body"):
        list(make_factory(fake)().stream(REQUEST))
    assert fake.requests[-1].headers["accept-encoding"] == "identity"


def test_a_whole_json_completion_is_one_token(fake):
    # An OpenAI-compatible server that ignores "stream": true.
    fake.push(hostile("json_completion"))
    items = list(make_factory(fake)().stream(REQUEST))
    assert items == [
        "Hello there",
        Finish("stop", {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}),
    ]


def test_a_200_html_page_is_a_protocol_error_not_an_empty_answer(fake):
    fake.push(hostile("html_page"))
    with pytest.raises(UpstreamProtocolError, match=r"\(text/html\) ended without any event"):
        list(make_factory(fake)().stream(REQUEST))


@pytest.mark.parametrize("mode", ["finish_then_hang", "finish_then_drop"])
def test_an_upstream_that_stops_after_finish_reason_ends_the_answer_finished(fake, mode):
    # The text is complete once finish_reason came; only usage and [DONE] are
    # missing. Before, a hang became upstream_timeout after the read timeout
    # (30 s here) and a drop upstream_dropped. Now: end, without usage, after
    # at most FINISH_GRACE_S.
    # Under threads, httpcore's blocked read is not woken by a close from
    # another thread (gevent's is): with the httpx transport the read timeout
    # (3 s here) ends the hang, also as finished.
    timeout = 3 if fake.http == "httpx" else 30
    fake.push(hostile(mode))
    factory = make_factory(fake, OPENAI_TIMEOUT_S=timeout, OPENAI_MAX_RETRIES=0)
    assert list(factory().stream(REQUEST)) == ["a", "b", Finish("stop", None)]
    if mode == "finish_then_hang":
        assert fake.responses[-1].client_closed.wait(10)  # we hung up


def test_read_timeout(fake):
    fake.push(stall(30))
    with pytest.raises(UpstreamTimeout):
        list(make_factory(fake, OPENAI_TIMEOUT_S=0.3, OPENAI_MAX_RETRIES=0)().stream(REQUEST))


def test_close_closes_the_upstream_connection(fake):
    fake.push(tokens([f"t{i}" for i in range(50)], delay_s=0.1))
    adapter = make_factory(fake)()
    stream = adapter.stream(REQUEST)
    assert next(stream) == "t0"
    adapter.close()
    assert list(stream) == []
    assert fake.responses[-1].client_closed.wait(10)
    assert fake.responses[-1].tokens_written < 50


def test_keep_alive_connection_is_reused_across_generations(fake):
    factory = make_factory(fake)
    for _ in range(3):
        assert list(factory().stream(REQUEST))[-1].reason == "stop"
    fake.wait_for_responses(3)
    assert fake.connections == 1
    factory.close()


def test_connection_settings_reach_the_sdk_client(fake):
    http = fake.http
    factory = make_factory(
        fake,
        OPENAI_CONNECT_TIMEOUT_S=2.5,
        OPENAI_TIMEOUT_S=7,
        OPENAI_POOL_SIZE=3,
        OPENAI_KEEPALIVE=2,
    )
    timeout = factory.client.timeout
    assert (timeout.connect, timeout.read) == (2.5, 7)
    transport = factory.client._client._transport
    if http == "llhttp":
        assert isinstance(transport, LlhttpTransport)
        assert (transport.max_connections, transport.max_keepalive) == (3, 2)
    else:  # no public getter for the pool limits: check them where httpx keeps them
        pool = transport._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (3, 2)
    factory.close()


def test_an_environment_proxy_keeps_the_sdks_transport(fake, monkeypatch):
    # httpx applies HTTP(S)_PROXY only to its own transport.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert make_factory(fake).http == "httpx"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert make_factory(fake).http == fake.http


def test_llhttp_holds_every_connection_in_one_pool(fake):
    factory = make_factory(fake, MAX_STREAMS=1234, OPENAI_HTTP="llhttp")
    assert factory.shards.sizes == factory.shards.keepalive == [1234]
    factory.close()


def test_httpx_pool_size_follows_max_streams_by_default(fake):
    factory = make_factory(fake, MAX_STREAMS=1234, OPENAI_HTTP="httpx")
    assert sum(factory.shards.sizes) == sum(factory.shards.keepalive) == 1234
    assert max(factory.shards.sizes) == 32
    factory.close()


def test_httpx_generations_fill_the_first_pool_before_the_next(fake):
    factory = make_factory(fake, OPENAI_POOL_SIZE=40, OPENAI_HTTP="httpx")
    shards = factory.shards
    held = [shards.acquire()[0] for _ in range(33)]
    assert held == [0] * 32 + [1]
    for index in held:
        shards.release(index)
    assert shards.acquire()[0] == 0
    factory.close()


def test_tool_call_and_role_only_deltas_yield_no_tokens(fake):
    fake.push(tokens(["", "a", ""]))
    assert list(make_factory(fake)().stream(REQUEST)) == [
        "a",
        Finish("stop", {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}),
    ]


PROBE_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import select, socket
from gevent import monkey as m
from chatstream.adapters.upstream_pool import native_readability_probe
from httpcore2 import _utils
assert _utils.select.poll is not m.get_original("select", "poll")  # gevent's, before
assert native_readability_probe()
assert _utils.select.poll is m.get_original("select", "poll")
idle, peer = socket.socketpair()
assert not _utils.is_socket_readable(idle)  # open and quiet: reusable
peer.close()
assert _utils.is_socket_readable(idle)  # the server closed it: discarded
print("ok")
"""


def test_idle_connection_probe_is_native_under_gevent_and_still_sees_a_close():
    """Under gevent, httpcore's readability probe of idle pooled connections
    uses the native zero-timeout poll (upstream_pool.native_readability_probe),
    and still tells an open idle connection from one the server closed."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", PROBE_UNDER_GEVENT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_probe_leaves_httpcore_alone_without_gevent():
    from chatstream.adapters.upstream_pool import native_readability_probe

    assert native_readability_probe() is False
