"""Measure the memory store's RSS under issue 9's item 4 repros (before/after).

A real ``gunicorn -k gevent`` worker on loopback, the demo model without
delay, and the worker's ``VmRSS`` read from ``/proc`` after each step:

1. **held**: ``--held`` finished streams of ``--tokens`` tokens, kept (long
   TTL not needed: measured before they expire): RSS per held stream.
2. **rounds**: ``--rounds`` rounds of ``--streams`` streams, each left to
   expire (nobody reads; the next round starts after the TTL): RSS after each.
3. **idle readers**: ``--readers`` streams, each with one client that sends
   its GET while the stream runs and never reads a byte: RSS while held,
   after the TTL, after the clients hang up. (On loopback the kernel's socket
   buffers take about 1 MB per connection, so a 20,000-token stream mostly
   leaves the process; what stays is the store's copy.)

Run it against any checkout (``--root``, e.g. ``git worktree``-free:
``git archive <commit> | tar -x -C /tmp/old``) with this venv::

    .venv/bin/python scripts/memory_repro.py                       # this tree
    .venv/bin/python scripts/memory_repro.py --root /tmp/old       # another

One JSON object per line on stdout. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import server as support  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def health(client: httpx.Client) -> dict:
    return client.get("/healthz").json()


def submit_many(client: httpx.Client, count: int, tokens: int) -> list[str]:
    urls = []
    for _ in range(count):
        response = client.post(
            "/api/streaming", json={"prompt": "x", "options": {"tokens": tokens, "delay_ms": 0}}
        )
        response.raise_for_status()
        urls.append(response.json()["stream_url"])
    return urls


def idle_reader(port: int, url: str) -> socket.socket:
    """A client that asks for a stream and never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(support.ROOT), help="checkout to serve")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--held", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--max-store-mb", type=int, default=None)
    args = parser.parse_args()

    support.ROOT = Path(args.root)  # GunicornServer runs ``wsgi:app`` from there
    env = {
        "CHATSTREAM_ADAPTER": "demo",
        "CHATSTREAM_DEMO_DELAY_MS": "0",
        "CHATSTREAM_STREAM_TTL_S": str(args.ttl),
        "CHATSTREAM_SWEEP_S": "0.5",
        "CHATSTREAM_MAX_EVENTS": str(args.tokens + 1),
        "CHATSTREAM_MAX_STREAMS": str(max(args.readers, args.streams, args.held) + 10),
        "CHATSTREAM_ATTACH_GRACE_S": "3600",
        "CHATSTREAM_DETACH_GRACE_S": "3600",
        "CHATSTREAM_GENERATION_TIMEOUT_S": "3600",
        "CHATSTREAM_LOG_FORMAT": "text",
    }
    if args.max_store_mb:
        env["CHATSTREAM_MAX_STORE_MB"] = str(args.max_store_mb)
    settle = args.ttl + 3.0  # past the TTL plus a few sweeps
    budget = 30 + args.tokens * max(args.streams, args.readers, args.held) / 50_000

    def report(step: str, **fields: object) -> None:
        print(json.dumps({"step": step, **fields}), flush=True)

    with support.GunicornServer(env) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        (pid,) = srv.worker_pids()
        idle = lambda: health(client)["running"] == 0  # noqa: E731
        submit_many(client, 1, 100)
        wait_for(idle, budget, "warm-up")
        base = rss_mb(pid)
        report("baseline", root=args.root, rss_mb=round(base, 1))

        submit_many(client, args.held, args.tokens)
        wait_for(idle, budget, "held streams")
        held = rss_mb(pid)
        report(
            "held",
            streams=args.held,
            tokens=args.tokens,
            rss_mb=round(held, 1),
            per_stream_mb=round((held - base) / args.held, 3),
        )
        time.sleep(settle)
        report("held, after TTL", rss_mb=round(rss_mb(pid), 1))

        rounds = []
        for _ in range(args.rounds):
            submit_many(client, args.streams, args.tokens)
            wait_for(idle, budget, "a round")
            peak = rss_mb(pid)
            time.sleep(settle)
            rounds.append((round(peak, 1), round(rss_mb(pid), 1)))
        report(
            "rounds (peak, after TTL)",
            streams=args.streams,
            tokens=args.tokens,
            rss_mb=rounds,
            growth_mb=round(rounds[-1][1] - base, 1),
        )

        if not args.readers:
            return
        before = rss_mb(pid)
        sockets = []
        try:
            # Each reader attaches while its stream runs, as a browser tab would.
            for url in submit_many(client, args.readers, args.tokens):
                sockets.append(idle_reader(srv.port, url))
            wait_for(idle, budget, "reader streams")
            held = rss_mb(pid)
            report(
                "idle readers",
                readers=args.readers,
                attached=health(client)["readers"],
                rss_mb=round(held, 1),
                per_reader_mb=round((held - before) / args.readers, 3),
            )
            time.sleep(settle)
            report(
                "idle readers, after TTL",
                attached=health(client)["readers"],
                rss_mb=round(rss_mb(pid), 1),
            )
        finally:
            for sock in sockets:
                sock.close()
        time.sleep(3)
        report("idle readers gone", rss_mb=round(rss_mb(pid), 1))


if __name__ == "__main__":
    main()
