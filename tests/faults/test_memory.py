"""Memory of the in-memory store on a real ``gunicorn -k gevent`` (issue 9, item 4).

Scaled-down versions of the issue's repros (the full ones:
``scripts/memory_repro.py``, README "Failure behaviour"): streams of 20,000
demo tokens (about 1 MB of frames each), a short TTL, and the worker's
``VmRSS``. Each test prints what it measured. On the old code finished
streams stayed until a new stream was created (and then until the cycle
collector ran), so RSS never came down, grew with each round, and no cap
bounded it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.client import wait_until
from tests.support.server import GunicornServer

TOKENS = 20_000
TTL_S = 2.0
ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_DEMO_DELAY_MS": "0",
    "CHATSTREAM_STREAM_TTL_S": str(TTL_S),
    "CHATSTREAM_SWEEP_S": "0.2",
    "CHATSTREAM_MAX_EVENTS": "100001",
    "CHATSTREAM_ATTACH_GRACE_S": "600",
    "CHATSTREAM_DETACH_GRACE_S": "600",
    "CHATSTREAM_LOG_FORMAT": "text",
}
BODY = {"prompt": "x", "options": {"tokens": TOKENS, "delay_ms": 0}}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def submit(client: httpx.Client, count: int) -> list[str]:
    urls = []
    for _ in range(count):
        response = client.post("/api/streaming", json=BODY)
        assert response.status_code == 202, response.text
        urls.append(response.json()["stream_url"])
    return urls


def all_finished(client: httpx.Client) -> bool:
    return client.get("/healthz").json()["running"] == 0


def settle(client: httpx.Client, pid: int, target_mb: float, timeout: float) -> float:
    """RSS once it is at most ``target_mb``, or after ``timeout`` (bounded polling)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and rss_mb(pid) > target_mb:
        time.sleep(0.2)
    return rss_mb(pid)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def test_expired_streams_are_freed_despite_readers_that_never_read(server, client):
    """12 finished streams of 100,000 tokens, each with a reader that never reads.

    Each stream (~6 MB on the wire) is more than the loopback socket buffers
    take, so every reader stays blocked in its write. Nothing is posted after
    them: only a timer can sweep them, and the readers must not pin them.
    """
    (pid,) = server.worker_pids()
    base = rss_mb(pid)
    body = {"prompt": "x", "options": {"tokens": 100_000, "delay_ms": 0}}
    urls = []
    for _ in range(12):
        response = client.post("/api/streaming", json=body)
        assert response.status_code == 202, response.text
        urls.append(response.json()["stream_url"])
    wait_until(lambda: all_finished(client), timeout=120, interval=0.2)
    sockets = []
    try:
        for url in urls:  # a GET, then never a byte read
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            sockets.append(sock)
        wait_until(lambda: client.get("/healthz").json()["readers"] == 12, timeout=30)
        peak = rss_mb(pid)
        growth = peak - base
        after = settle(client, pid, base + growth / 2, timeout=TTL_S + 10)
        readers = client.get("/healthz").json()["readers"]
        print(
            f"\n12 streams x 100,000 tokens, 12 readers that never read: RSS {base:.0f} -> "
            f"{peak:.0f} MB held, {after:.0f} MB after the TTL with {readers} readers still "
            f"attached (kept {100 * (after - base) / growth:.0f}% of the growth)"
        )
        assert growth > 30, "the streams should have cost memory"
        assert readers == 12  # still blocked in their writes
        assert after <= base + growth / 2
        assert client.get(urls[-1]).status_code == 404
    finally:
        for sock in sockets:
            sock.close()


def test_rounds_left_to_expire_do_not_grow(server, client):
    """Rounds of 20 streams, each left to expire: RSS after each round stays flat."""
    (pid,) = server.worker_pids()
    base = rss_mb(pid)
    after_rounds = []
    for _ in range(4):
        submit(client, 20)
        wait_until(lambda: all_finished(client), timeout=120, interval=0.2)
        peak = rss_mb(pid)
        after_rounds.append(settle(client, pid, base + (peak - base) / 2, timeout=TTL_S + 10))
    figures = " -> ".join(f"{mb:.0f}" for mb in after_rounds)
    print(f"\n4 rounds of 20 x {TOKENS} tokens, RSS after each TTL: {base:.0f} -> {figures} MB")
    # One round is about 25-40 MB; the old code kept every round (~+35 MB each).
    assert after_rounds[-1] - after_rounds[0] < 15
    assert after_rounds[-1] - base < 30


def test_byte_cap_drops_the_oldest_finished_streams(tmp_path):
    """``CHATSTREAM_MAX_STORE_MB=8``: 16 streams of ~1 MB, the newest stay readable."""
    env = {**ENV, "CHATSTREAM_MAX_STORE_MB": "8", "CHATSTREAM_STREAM_TTL_S": "600"}
    with GunicornServer(env, log_dir=tmp_path) as srv, httpx.Client(base_url=srv.url) as client:
        (pid,) = srv.worker_pids()
        base = rss_mb(pid)
        urls = []
        for _ in range(16):  # one at a time, so "oldest" is well defined
            urls += submit(client, 1)
            wait_until(lambda: all_finished(client), timeout=60, interval=0.05)
        statuses = []
        for url in urls:
            with client.stream("GET", url) as response:
                statuses.append(response.status_code)
        held = rss_mb(pid) - base
        print(f"\nMAX_STORE_MB=8, 16 streams of ~1 MB: {statuses}; RSS +{held:.0f} MB")
        kept = statuses.count(200)
        assert 4 <= kept <= 8
        assert statuses == [404] * (16 - kept) + [200] * kept  # oldest first
        assert "dropped" in srv.log()
