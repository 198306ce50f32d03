"""Stream-scoped ids and the id-less pick across two instances sharing one Redis."""

from __future__ import annotations

import httpx
import pytest

from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.redis_server import RedisServer
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.live, pytest.mark.redis]


def numbers(count: int) -> str:
    return "".join(f"{i} " for i in range(count))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ids-redis")
    with RedisServer() as redis_server:
        env = {
            "CHATSTREAM_REDIS_URL": redis_server.url,
            "CHATSTREAM_ADAPTER": "demo",
            "CHATSTREAM_HEARTBEAT_S": "0.3",
            "CHATSTREAM_REDIS_BEAT_S": "0.2",
        }
        with GunicornServer(env, log_dir=logs) as a, GunicornServer(env, log_dir=logs) as b:
            yield a, b


def test_a_reconnect_on_another_instance_resumes_its_stream_not_the_latest(pair):
    a, b = pair
    with httpx.Client(timeout=30) as browser:  # one cookie jar: two tabs
        submit(browser, a.url, prompt="x", options={"tokens": 30, "delay_ms": 5})
        head = read_events(browser, a.url + "/api/streaming", limit=5)
        submit(browser, a.url, prompt="x", options={"tokens": 3})  # the other tab
        tail = read_events(browser, b.url + "/api/streaming", last_event_id=head[-1].id)
        assert text_of(head + tail) == numbers(30)


def test_post_post_get_get_each_tab_its_own_across_instances(pair):
    a, b = pair
    with httpx.Client(timeout=30) as browser:
        submit(browser, a.url, prompt="x", options={"tokens": 4})
        submit(browser, a.url, prompt="x", options={"tokens": 6})
        assert text_of(read_events(browser, a.url + "/api/streaming")) == numbers(4)
        assert text_of(read_events(browser, b.url + "/api/streaming")) == numbers(6)
        # A third prompt after both were read (the owner forgot their readers).
        submit(browser, a.url, prompt="x", options={"tokens": 2})
        assert text_of(read_events(browser, a.url + "/api/streaming")) == numbers(2)
