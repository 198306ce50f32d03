"""Overload on a real ``gunicorn -k gevent``: the worker stalls while streams run
and new ones arrive, with start pacing on (``CHATSTREAM_START_MAX_LAG_MS``).

The fault is a stalled process (SIGSTOP, as a GC pause, a CPU spike or a
noisy neighbour would): when the worker resumes, its event loop is late, so
new generations wait before their adapter starts (README, "Failure
behaviour"). What readers see: every answer complete, in order, once; the
waiting ones start later. Nothing is lost.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx
import pytest

from tests.support.client import read_events
from tests.support.client import text_of
from tests.support.server import GunicornServer

TOKENS = 60
ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_START_MAX_LAG_MS": "5",
    "CHATSTREAM_RATE_LIMIT": "off",
    "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "0",
    "CHATSTREAM_LOG_FORMAT": "text",
}
BODY = {"prompt": "x", "options": {"tokens": TOKENS, "delay_ms": 10}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


def paced_starts(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^chatstream_starts_paced_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_stalls_during_an_arrival_burst_lose_no_token(server):
    """40 streams arrive in two waves around three 300 ms SIGSTOPs of the
    worker; each is read by its own client. Every answer is the demo's full
    answer for its prompt, token ids consecutive, ending in ``stop``."""
    (pid,) = server.worker_pids()
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def chat(n: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                response = client.post("/api/streaming", json=BODY)
                assert response.status_code == 202, response.text
                results[n] = read_events(client, server.url + response.json()["stream_url"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = paced_starts(client)
        reference = read_events(
            client,
            server.url + client.post("/api/streaming", json=BODY).json()["stream_url"],
        )
        threads = []
        for wave in range(2):
            for n in range(20):
                thread = threading.Thread(target=chat, args=(wave * 20 + n,), daemon=True)
                thread.start()
                threads.append(thread)
            for _ in range(3 - wave * 2):
                time.sleep(0.05)
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(0.3)
                finally:
                    os.kill(pid, signal.SIGCONT)
        for thread in threads:
            thread.join(60)
        paced = paced_starts(client) - before

    assert not errors, errors[:3]
    want = text_of(reference)
    assert len(results) == 40
    for n, events in results.items():
        ids = [int(e.id.rsplit(".", 1)[-1]) for e in events]
        assert ids == list(range(1, len(events) + 1)), f"chat {n}: ids {ids[:5]}…"
        assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
        assert text_of(events) == want, f"chat {n}"
    print(f"\nFIGURE 40 streams, 3 worker stalls of 300 ms: all complete, {paced:.0f} paced starts")
