"""Redis-mode faults: stalls of readers, owners and Redis; Redis restarts and OOM.

Each test starts its own redis-server and two gunicorn -k gevent instances
(A generates, B serves readers of A's streams), injects one fault and counts
what the readers got. Settings are scaled down (beats of 0.2 s, graces of a
few seconds) so the suite stays short; the figure each test measures is
printed with a ``FIGURE`` prefix (``pytest -rP`` shows it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

import httpx
import pytest
from httpx_sse import connect_sse

from tests.support.client import submit
from tests.support.client import wait_until
from tests.support.redis_server import RedisServer
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.live, pytest.mark.redis]

BASE_ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_HEARTBEAT_S": "0.3",
    "CHATSTREAM_REDIS_BEAT_S": "0.2",
    "CHATSTREAM_REDIS_LIVENESS_S": "1.5",
    # Long enough that a reader instance starved of CPU on a loaded test
    # machine is not taken for gone; the presence tests set their own.
    "CHATSTREAM_DETACH_GRACE_S": "3",
    "CHATSTREAM_SWEEP_S": "0.1",
}


@dataclass
class Reading:
    """What one reader got, filled in by its thread."""

    url: str
    events: list[tuple[int, str, dict]] = field(default_factory=list)
    failure: str | None = None

    @property
    def terminal(self) -> str:
        if self.failure:
            return f"failed: {self.failure}"
        if not self.events:
            return "nothing"
        _, kind, data = self.events[-1]
        return data.get("finish_reason") or data.get("code") or kind

    @property
    def contiguous(self) -> bool:
        return [i for i, _, _ in self.events] == list(range(1, len(self.events) + 1))


def read_all(reading: Reading, deadline_s: float = 90.0) -> None:
    """Read one stream to its end (bounded by ``deadline_s``), recording events."""
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
            with connect_sse(client, "GET", reading.url) as source:
                if source.response.status_code != 200:
                    reading.failure = f"HTTP {source.response.status_code}"
                    return
                stop = time.monotonic() + deadline_s
                for sse in source.iter_sse():
                    if not sse.event or not sse.data:
                        continue
                    reading.events.append(
                        (int((sse.id or "0").rsplit(".", 1)[-1]), sse.event, json.loads(sse.data))
                    )
                    if sse.event in ("end", "error") or time.monotonic() > stop:
                        return
    except httpx.HTTPError as exc:
        reading.failure = type(exc).__name__


class Readers:
    """Readers of many streams at once, one thread each."""

    def __init__(self, urls: list[str]) -> None:
        self.readings = [Reading(url) for url in urls]
        self._pool = ThreadPoolExecutor(max_workers=len(urls))
        self._futures = [self._pool.submit(read_all, r) for r in self.readings]

    def wait_attached(self, events: int = 2) -> None:
        """Every reader has received a few events (so it is attached)."""
        wait_until(lambda: all(len(r.events) >= events for r in self.readings), timeout=30)

    def finish(self, timeout: float = 90.0) -> list[Reading]:
        for future in self._futures:
            future.result(timeout=timeout)
        self._pool.shutdown()
        return self.readings

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class PingCounter:
    """Counts ``: ping`` heartbeats on one raw stream, with their arrival times."""

    def __init__(self, url: str) -> None:
        self.times: list[float] = []
        self.lines = 0
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._future = self._pool.submit(self._read, url)

    def _read(self, url: str) -> None:
        with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
            with client.stream("GET", url) as response:
                for line in response.iter_lines():
                    self.lines += 1
                    if line == ": ping":
                        self.times.append(time.monotonic())
                    elif line.startswith("event: end") or line.startswith("event: error"):
                        return

    def between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.times)

    def finish(self) -> None:
        self._future.result(timeout=90)
        self._pool.shutdown()


def tally(readings: list[Reading]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reading in readings:
        counts[reading.terminal] = counts.get(reading.terminal, 0) + 1
    return counts


def on(server: GunicornServer, url: str, owner: GunicornServer) -> str:
    """The same stream URL, on another instance."""
    return server.url + url[len(owner.url) :]


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def start_pair(redis_server, tmp_path):
    """Start instances A and B sharing ``redis_server`` (extra env per test)."""
    servers: list[GunicornServer] = []

    def start(instances: int = 2, **extra: str) -> list[GunicornServer]:
        env = {**BASE_ENV, "CHATSTREAM_REDIS_URL": redis_server.url, **extra}
        for _ in range(instances):
            servers.append(GunicornServer(env, log_dir=tmp_path).start())
        return servers

    yield start
    for server in servers:
        server.stop()


def pause(pid: int, seconds: float) -> None:
    """SIGSTOP ``pid`` for ``seconds``, then SIGCONT (always)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def start_streams(owner: GunicornServer, count: int, tokens: int, delay_ms: int) -> list[str]:
    with httpx.Client(timeout=30) as client:
        options = {"tokens": tokens, "delay_ms": delay_ms}
        return [submit(client, owner.url, prompt="x", options=options) for _ in range(count)]


# -- item 1: presence -----------------------------------------------------------


def test_reader_instance_stall_cancels_no_attended_stream(start_pair):
    """B (every reader) stalls 3 s: longer than 3 beats (the old staleness was
    2 s), well inside the 6 s detach grace (B's silence also includes its
    wake-up on a loaded machine); the streams are older than the grace by the
    time their sightings look stale. Before: streams were cancelled while
    their readers were connected. After: none."""
    a, b = start_pair(CHATSTREAM_DETACH_GRACE_S="6")
    created = time.monotonic()
    urls = start_streams(a, 50, tokens=200, delay_ms=50)  # ~10 s each
    with Readers([on(b, url, a) for url in urls]) as readers:
        readers.wait_attached()
        time.sleep(max(0.0, created + 4.5 - time.monotonic()))  # streams ~4.5 s old
        (worker,) = b.worker_pids()
        pause(worker, 3.0)
        readings = readers.finish()
    counts = tally(readings)
    print(f"FIGURE reader-instance stall 3 s, 50 readers on B: outcomes {counts}")
    assert counts == {"stop": 50}, counts
    assert all(r.contiguous and len(r.events) == 201 for r in readings)


def test_owner_stall_shorter_than_liveness_loses_nothing(start_pair):
    """A (the owner) stalls 2 s, inside its 3 s liveness and longer than the
    1.5 s detach grace, with readers on A and on B: every stream completes."""
    a, b = start_pair(CHATSTREAM_REDIS_LIVENESS_S="3", CHATSTREAM_DETACH_GRACE_S="1.5")
    urls = start_streams(a, 40, tokens=100, delay_ms=40)
    half = len(urls) // 2
    with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
        readers.wait_attached()
        (worker,) = a.worker_pids()
        pause(worker, 2.0)
        readings = readers.finish()
    counts = tally(readings)
    print(f"FIGURE owner stall 2 s, 20 local + 20 remote readers: outcomes {counts}")
    assert counts == {"stop": 40}, counts
    assert all(r.contiguous and len(r.events) == 101 for r in readings)


def test_owner_stall_past_liveness_stops_the_orphaned_generations(start_pair):
    """A stalls 3 s, past its 1.5 s liveness. Streams followed from B are
    ended there (``generation_interrupted``: the owner looks dead); when A
    wakes it learns that from Redis and stops those generations at once
    instead of running them for nobody (not at the end of a detach grace:
    10 s here). Streams read only on A go on."""
    a, b = start_pair(CHATSTREAM_DETACH_GRACE_S="10")
    urls = start_streams(a, 10, tokens=300, delay_ms=20)  # ~6 s each
    half = len(urls) // 2
    with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
        readers.wait_attached()
        (worker,) = a.worker_pids()
        pause(worker, 3.0)
        with httpx.Client(timeout=30) as client:
            # Well before the local streams can end (~3 s of tokens are left).
            wait_until(lambda: client.get(a.url + "/healthz").json()["running"] <= half, 2.5)
        readings = readers.finish()
    local, remote = tally(readings[:half]), tally(readings[half:])
    print(
        f"FIGURE owner stall 3 s past 1.5 s liveness: read on A {local}, read on B {remote}; "
        f"the {half} orphaned generations stopped when A woke"
    )
    assert local == {"stop": half} and remote == {"generation_interrupted": half}
    assert all(r.contiguous for r in readings)


# -- item 3: Redis outages ------------------------------------------------------


def test_redis_stall_shorter_than_budget_loses_no_stream(start_pair, redis_server):
    """Redis is SIGSTOPped 11 s (longer than the 10 s that used to end every
    stream), inside a 20 s outage budget: local and remote readers get every
    event and the normal end (remote ones get heartbeats meanwhile); Redis is
    caught up."""
    a, b = start_pair(CHATSTREAM_REDIS_OUTAGE_BUDGET_S="20")
    urls = start_streams(a, 40, tokens=300, delay_ms=50)  # ~15 s each
    half = len(urls) // 2
    with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
        readers.wait_attached()
        pings = PingCounter(on(b, urls[-1], a))
        wait_until(lambda: pings.lines > 2)
        stalled = time.monotonic()
        redis_server.pause(11.0)
        resumed = time.monotonic()
        readings = readers.finish()
        pings.finish()
    counts = tally(readings)
    heartbeats = pings.between(stalled + 1, resumed)
    print(
        f"FIGURE Redis SIGSTOP 11 s, budget 20 s, 40 streams: outcomes {counts}; "
        f"heartbeats to a reader on B during the stall: {heartbeats}"
    )
    assert counts == {"stop": 40}, counts
    assert heartbeats >= 5  # every 0.3 s: the reader's connection is kept alive
    assert all(r.contiguous and len(r.events) == 301 for r in readings)
    # Redis holds the whole of every stream: a new reader on B replays it.
    replay = Reading(on(b, urls[0], a))
    read_all(replay)
    assert replay.terminal == "stop" and len(replay.events) == 301 and replay.contiguous


def test_redis_stall_past_budget_ends_streams_with_store_unavailable(start_pair, redis_server):
    """Past a 2 s budget (Redis stopped 5 s) running streams end with
    ``store_unavailable`` on both instances, with no gap in their ids; the
    service takes new streams again once Redis is back."""
    a, b = start_pair(CHATSTREAM_REDIS_OUTAGE_BUDGET_S="2")
    urls = start_streams(a, 10, tokens=2000, delay_ms=20)
    half = len(urls) // 2
    with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
        readers.wait_attached()
        redis_server.pause(5.0)
        readings = readers.finish()
    counts = tally(readings)
    print(f"FIGURE Redis SIGSTOP 5 s, budget 2 s, 10 streams: outcomes {counts}")
    assert counts == {"store_unavailable": 10}, counts
    assert all(r.contiguous for r in readings[:half])  # the owner's readers: ids in order
    with httpx.Client(timeout=30) as client:
        wait_until(lambda: client.get(a.url + "/readyz").status_code == 200)
        url = submit(client, a.url, prompt="x", options={"tokens": 5})
    after = Reading(on(b, url, a))
    read_all(after)
    assert after.terminal == "stop" and len(after.events) == 6


def test_redis_restart_with_data_loss_keeps_running_streams(start_pair, redis_server):
    """Redis restarts empty on the same port. Running streams: their owner
    rewrites them from event 1, so readers on both instances complete.
    Finished streams the owner no longer holds are gone (404), by design."""
    a, b = start_pair()
    finished = start_streams(a, 5, tokens=3, delay_ms=1)
    with httpx.Client(timeout=30) as client:
        wait_until(lambda: client.get(a.url + "/healthz").json()["running"] == 0)
    urls = start_streams(a, 20, tokens=150, delay_ms=40)  # ~6 s each
    half = len(urls) // 2
    with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
        readers.wait_attached()
        redis_server.restart_empty()
        readings = readers.finish()
    counts = tally(readings)
    with httpx.Client(timeout=30) as client:
        gone = sum(client.get(on(b, u, a)).status_code == 404 for u in finished)
    print(
        f"FIGURE Redis restart with data loss, 20 running streams: outcomes {counts}; "
        f"finished streams gone: {gone}/5"
    )
    assert counts == {"stop": 20}, counts
    assert all(r.contiguous and len(r.events) == 151 for r in readings)
    assert gone == 5
    replay = Reading(on(b, urls[-1], a))  # Redis was caught up
    read_all(replay)
    assert replay.terminal == "stop" and len(replay.events) == 151


def test_worker_sigkill_during_flush_leaves_a_clean_prefix(start_pair, redis_server):
    """The owner's worker is killed while its flush is stuck on a stalled
    Redis: readers on B get an unbroken prefix, then ``generation_interrupted``."""
    a, b = start_pair()
    urls = start_streams(a, 10, tokens=5000, delay_ms=5)
    with Readers([on(b, u, a) for u in urls]) as readers:
        readers.wait_attached(events=20)
        (worker,) = a.worker_pids()
        assert redis_server.proc is not None
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # the flusher now waits for Redis with a batch in flight
            os.kill(worker, signal.SIGKILL)
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        started = time.monotonic()
        readings = readers.finish()
    counts = tally(readings)
    print(
        f"FIGURE owner SIGKILL during a flush, 10 remote readers: outcomes {counts} "
        f"in {time.monotonic() - started:.1f} s"
    )
    assert counts == {"generation_interrupted": 10}, counts
    assert all(r.contiguous for r in readings)


# -- item 7: readiness ----------------------------------------------------------


def test_readyz_not_ready_while_redis_refuses_writes(start_pair, redis_server):
    """Redis at ``maxmemory`` answers PING but refuses writes: not ready. A
    stream running through 1 s of OOM still completes (its writes are retried)."""
    (a,) = start_pair(instances=1)
    admin = redis_server.client()
    with httpx.Client(timeout=30) as client:
        assert client.get(a.url + "/readyz").status_code == 200
        (url,) = start_streams(a, 1, tokens=100, delay_ms=30)
        with Readers([url]) as readers:
            readers.wait_attached()
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", "1")
            try:
                during = client.get(a.url + "/readyz").status_code
                refused = client.post(a.url + "/api/streaming", json={"prompt": "x"}).status_code
                time.sleep(1.0)
            finally:
                admin.config_set("maxmemory", "0")
            (reading,) = readers.finish()
        after = wait_until(lambda: client.get(a.url + "/readyz").status_code == 200)
    admin.close()
    print(f"FIGURE readyz during OOM: {during}, POST: {refused}; stream: {reading.terminal}")
    assert during == 503 and refused == 503 and after
    assert reading.terminal == "stop" and len(reading.events) == 101 and reading.contiguous
