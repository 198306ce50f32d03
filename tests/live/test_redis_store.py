"""The contract across processes: several workers, two instances, one real Redis."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from httpx_sse import connect_sse

from chatstream import sse
from chatstream.concurrency import Driver
from chatstream.store.redis import RedisStreamStore
from chatstream.store.redis.keys import StreamKeys
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.client import wait_until
from tests.support.redis_server import RedisServer
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.live, pytest.mark.redis]

TOKENS_20 = "".join(f"{i} " for i in range(20))


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


def redis_env(redis_server, **extra):
    return {
        "CHATSTREAM_REDIS_URL": redis_server.url,
        "CHATSTREAM_ADAPTER": "demo",
        "CHATSTREAM_HEARTBEAT_S": "0.3",
        "CHATSTREAM_REDIS_BEAT_S": "0.2",
        "CHATSTREAM_REDIS_LIVENESS_S": "1.5",
        "CHATSTREAM_DETACH_GRACE_S": "1",
        "CHATSTREAM_SWEEP_S": "0.1",
        **extra,
    }


@pytest.fixture(scope="module")
def pair(redis_server, tmp_path_factory):
    """Two separate gunicorn instances (one worker each) sharing one Redis."""
    logs = tmp_path_factory.mktemp("pair")
    env = redis_env(redis_server)
    with GunicornServer(env, log_dir=logs) as a, GunicornServer(env, log_dir=logs) as b:
        yield a, b


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def path_of(url: str, server) -> str:
    return url[len(server.url) :]


def test_post_on_one_instance_read_on_the_other(pair, client):
    a, b = pair
    url = submit(client, a.url, prompt="x", options={"tokens": 20, "delay_ms": 5})
    on_b = read_events(client, b.url + path_of(url, a))
    assert text_of(on_b) == TOKENS_20 and on_b[-1].event == "end"
    assert read_events(client, url) == on_b  # replay on the owner too


def test_resume_on_another_instance_with_last_event_id(pair, client):
    a, b = pair
    url = submit(client, a.url, prompt="x", options={"tokens": 20, "delay_ms": 20})
    head = read_events(client, url, limit=5)
    tail = read_events(client, b.url + path_of(url, a), last_event_id=head[-1].id)
    assert text_of(head + tail) == TOKENS_20
    done = client.get(b.url + path_of(url, a), headers={"Last-Event-ID": tail[-1].id})
    assert done.status_code == 204


def test_seed_cookie_contract_across_instances(pair):
    a, b = pair
    with httpx.Client(timeout=30) as browser:
        submit(browser, a.url, prompt="x", options={"tokens": 5})
        assert text_of(read_events(browser, b.url + "/api/streaming")) == "0 1 2 3 4 "


def test_cancel_on_the_other_instance_stops_generation(pair, client):
    a, b = pair
    url = submit(client, a.url, prompt="x", options={"tokens": 10_000, "delay_ms": 20})
    head = read_events(client, b.url + path_of(url, a), limit=3)
    response = client.delete(b.url + path_of(url, a))
    assert response.json()["cancelled"] is True
    rest = read_events(client, b.url + path_of(url, a), last_event_id=head[-1].id)
    assert rest[-1].data == {"finish_reason": "cancelled", "reason": "client"}
    assert len(head) + len(rest) < 10_000
    wait_until(lambda: client.get(a.url + "/healthz").json()["running"] == 0)


def test_reader_presence_is_cluster_wide(pair, client):
    a, b = pair
    url = submit(client, a.url, prompt="x", options={"tokens": 60, "delay_ms": 50})
    # The only reader is on B, the generation on A: it must not be cancelled
    # for lack of readers (detach grace is 1 s here, the answer takes ~3 s).
    events = read_events(client, b.url + path_of(url, a))
    assert events[-1].data["finish_reason"] == "stop" and len(events) == 61


def test_reader_leaving_cancels_generation_after_grace(pair, client):
    a, b = pair
    url = submit(client, a.url, prompt="x", options={"tokens": 10_000, "delay_ms": 20})
    read_events(client, b.url + path_of(url, a), limit=2)
    wait_until(lambda: client.get(a.url + "/healthz").json()["running"] == 0)
    assert read_events(client, url)[-1].data == {
        "finish_reason": "cancelled",
        "reason": "no_reader",
    }
    stream_id = url.rsplit("/", 1)[1][:8]
    # The cancel is logged with the stream's last sighting.
    cancels = [line for line in a.log().splitlines() if "no_reader cancel" in line]
    assert any(stream_id in line and "last reader seen" in line for line in cancels)


def test_finished_stream_keys_expire(redis_server, tmp_path):
    env = redis_env(redis_server, CHATSTREAM_STREAM_TTL_S="1")
    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=30) as client:
        url = submit(client, srv.url, prompt="x", options={"tokens": 3})
        stream_id = url.rsplit("/", 1)[1]
        read_events(client, url)
        r = redis_server.client()
        assert r.keys(f"cs:{{{stream_id}}}:*")
        wait_until(lambda: not r.keys(f"cs:{{{stream_id}}}:*"))
        assert client.get(url).status_code == 404
        r.close()


def test_several_workers_one_contract(redis_server, tmp_path):
    env = redis_env(redis_server)
    with GunicornServer(env, workers=3, log_dir=tmp_path) as srv:
        assert len(srv.worker_pids()) == 3
        for _ in range(12):  # new connections land on any worker
            with httpx.Client(timeout=30) as browser:
                url = submit(browser, srv.url, prompt="x", options={"tokens": 20, "delay_ms": 2})
            with httpx.Client(timeout=30) as reader:
                head = read_events(reader, url, limit=4)
            with httpx.Client(timeout=30) as reader:
                tail = read_events(reader, url, last_event_id=head[-1].id)
            assert text_of(head + tail) == TOKENS_20


def test_sigkill_of_the_generating_worker_gives_readers_an_error(pair, redis_server, tmp_path):
    _, b = pair
    env = redis_env(redis_server)
    with GunicornServer(env, log_dir=tmp_path) as victim, httpx.Client(timeout=30) as client:
        url = submit(client, victim.url, prompt="x", options={"tokens": 10_000, "delay_ms": 20})
        head = read_events(client, b.url + path_of(url, victim), limit=3)
        (worker,) = victim.worker_pids()
        os.kill(worker, signal.SIGKILL)
        started = time.monotonic()
        rest = read_events(client, b.url + path_of(url, victim), last_event_id=head[-1].id)
        assert rest[-1].event == "error"
        assert rest[-1].data["code"] == "generation_interrupted"
        assert time.monotonic() - started < 30  # an upper bound: it must not hang
        ids = [int(e.id.rsplit(".", 1)[-1]) for e in head + rest]
        assert ids == list(range(1, len(ids) + 1))  # nothing lost or repeated


def test_redis_down_then_back(tmp_path):
    """Redis stops for a moment: the reader misses nothing; new streams are
    refused (503) and /readyz fails only while it is away."""
    with RedisServer() as own_redis:
        env = redis_env(own_redis)
        with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=30) as client:
            url = submit(client, srv.url, prompt="x", options={"tokens": 100, "delay_ms": 20})
            with connect_sse(client, "GET", url) as source:
                events = source.iter_sse()
                next(e for e in events if e.event == "newToken")
                own_redis.stop()
                response = client.post(srv.url + "/api/streaming", json={"prompt": "x"})
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "store_unavailable"
                assert client.get(srv.url + "/readyz").status_code == 503
                own_redis.start()  # same port, empty: the service recovers by itself
                rest = [e for e in events if e.data]
            ids = [int(e.id.rsplit(".", 1)[-1]) for e in rest]
            assert ids == list(range(2, 102)), ids  # tokens 2..100, then the end
            assert rest[-1].event == "end"
            wait_until(lambda: client.get(srv.url + "/readyz").status_code == 200)
            url = submit(client, srv.url, prompt="x", options={"tokens": 5})
            assert text_of(read_events(client, url)) == "0 1 2 3 4 "


def test_connections_stay_flat_as_streams_grow(redis_server, tmp_path):
    env = redis_env(redis_server)
    r = redis_server.client()

    def connections():
        return len(r.client_list()) - 1  # minus this test's own connection

    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(timeout=60) as client:
        url = submit(client, srv.url, prompt="x", options={"tokens": 2})
        read_events(client, url)
        baseline = connections()
        urls = [
            submit(client, srv.url, prompt="x", options={"tokens": 5, "delay_ms": 10_000})
            for _ in range(200)
        ]
        streams = [client.stream("GET", u) for u in urls[:100]]
        for s in streams:
            s.__enter__()
        try:
            with_streams = connections()
        finally:
            for s in streams:
                s.__exit__(None, None, None)
            for u in urls:
                client.delete(u)
        assert with_streams <= baseline + 2, (baseline, with_streams)
    r.close()


# -- the append script and the owner's memory, against a real Redis -----------


def frames(first: int, count: int) -> list[bytes]:
    return [sse.encode_token(f"{i} ", i) for i in range(first, first + count)]


def append(store: RedisStreamStore, stream_id: str, first: int, last: int, final: bool = False):
    keys = StreamKeys.of(stream_id)
    data = b"".join(frames(first, last - first + 1)) if last >= first else b""
    args = [60, 60, store.instance, first, last, int(final), data, 0]
    return store._shared.scripts.append(keys=[keys.events, keys.meta], args=args)


@pytest.fixture
def store(redis_server):
    """An in-process store (threads); short beats so its tasks stop quickly."""
    client, blocking = redis_server.client(), redis_server.client()
    store = RedisStreamStore(
        client, blocking, Driver("threading"), ttl_s=60, running_ttl_s=60, beat_s=0.1
    )
    yield store
    store.close()
    time.sleep(0.5)  # the blocking read returns within a beat, then its task ends
    client.close()
    blocking.close()


def test_append_answers_where_redis_is_and_never_writes_twice(store):
    assert append(store, "s1", 1, 0) == [0]  # creation: a batch of no event
    assert append(store, "s1", 1, 3) == [3]
    assert append(store, "s1", 1, 3) == [3]  # the reply was lost; the retry is a no-op
    assert append(store, "s1", 6, 7) == [3]  # a gap: the owner must resend from 4
    assert append(store, "s1", 4, 7, final=True) == [7]
    assert [int(e[1][b"n"]) for e in store.client.xrange(StreamKeys.of("s1").events)] == [3, 4]
    assert append(store, "s1", 8, 8) == [-1]  # finished: closed to later writes


def test_append_rebuilds_a_stream_lost_by_redis(store):
    append(store, "s2", 1, 0)
    append(store, "s2", 1, 5)
    store.client.flushall()  # Redis restarted empty
    assert append(store, "s2", 6, 8) == [0]  # the owner learns it must start over
    assert append(store, "s2", 1, 8) == [8]
    meta = StreamKeys.of("s2").meta
    assert store.client.hget(meta, "state") == b"running"
    assert store.client.hget(meta, "owner") == store.instance.encode()


def test_a_finished_stream_leaves_the_owners_memory_once_in_redis(store):
    writer = store.create()
    writer.append(frames(1, 3))
    writer.append(frames(4, 1), final=True)
    wait_until(lambda: not store._shared.owned)
    meta = StreamKeys.of(writer.stream_id).meta
    assert store.client.hmget(meta, ["state", "last"]) == [b"finished", b"4"]


def test_presence_counts_idle_time_from_the_last_sighting(store):
    writer = store.create()
    readers = StreamKeys.of(writer.stream_id).readers
    store._shared.writes.steady_since -= 60  # Redis has answered steadily for a while
    now = time.time()
    store.client.zadd(readers, {"other:1": now - 10})  # a reader last seen 10 s ago
    presence = store.presence(writer.stream_id)
    # Within the 30 s staleness window it still counts; its sighting is 10 s old.
    assert presence.readers == 1 and presence.ever_attached
    assert 9 < presence.idle_s < 20
    store.client.zadd(readers, {"other:1": now - 40})
    presence = store.presence(writer.stream_id)
    assert presence.readers == 0 and 39 < presence.idle_s < 50


def test_streams_the_owner_still_holds_are_rewritten_after_redis_lost_them(store):
    running, finished = store.create(), store.create()
    running.append(frames(1, 2))
    finished.append(frames(1, 2))
    finished.append(frames(3, 1), final=True)
    reader = store.open_reader(finished.stream_id)  # keeps it in the owner's memory
    wait_until(lambda: store._shared.owned[finished.stream_id].in_redis)
    store.client.flushall()  # Redis restarted empty
    store._keeper.resync()  # what the beat does when it finds its liveness key gone
    for writer, state, last in ((running, b"running", b"2"), (finished, b"finished", b"3")):
        meta = StreamKeys.of(writer.stream_id).meta
        wait_until(lambda meta=meta, last=last: store.client.hget(meta, "last") == last)
        assert store.client.hget(meta, "state") == state
    reader.close()
