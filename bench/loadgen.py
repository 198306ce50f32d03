"""Load generator process: ``python -m bench.loadgen '<json spec>'``.

It runs in its own process so that it can be pinned to a core of its own
(``taskset``), and talks to the orchestrator over line-delimited JSON:

1. runs ``warmup`` sequential chats, prints ``{"phase": "ready"}`` and waits for a
   line on stdin (the orchestrator samples the server's CPU time meanwhile);
2. runs the load: ``concurrent`` (N chats started evenly over ``ramp`` seconds,
   all at once if 0), ``sequential`` (N in a row)
   or ``idle`` (open N streams, print ``{"phase": "opened", ...}``, wait for a
   line on stdin, close them);
3. prints ``{"phase": "done", "wall": ..., "results": [...]}`` and exits.

Every loop is bounded: at most ``chats`` chats and ``deadline`` seconds, after
which unfinished chats are cancelled and counted as failed (``timeout``).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Coroutine
from typing import Any

from bench.chat import ChatResult
from bench.chat import ChatSpec
from bench.chat import TokenChecker
from bench.chat import open_stream
from bench.chat import run_chat


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _wait_for_go() -> None:
    """Block (off the loop) until the orchestrator writes a line on stdin."""
    await asyncio.to_thread(sys.stdin.readline)


async def _bounded(
    coros: list[Coroutine[Any, Any, ChatResult]], deadline: float
) -> list[ChatResult]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    out = []
    for task in tasks:
        if task.done() and not task.cancelled():
            out.append(task.result())
        else:
            out.append(ChatResult(False, error="timeout"))
    return out


async def _after(delay: float, spec: ChatSpec) -> ChatResult:
    """Start a chat ``delay`` seconds from now (arrivals spread over a ramp)."""
    if delay:
        await asyncio.sleep(delay)
    return await run_chat(spec)


async def _sequential(spec: ChatSpec, n: int, deadline: float) -> list[ChatResult]:
    results: list[ChatResult] = []
    stop = time.monotonic() + deadline
    for _ in range(n):
        left = stop - time.monotonic()
        if left <= 0:
            results.append(ChatResult(False, error="timeout"))
            continue
        try:
            results.append(await asyncio.wait_for(run_chat(spec), left))
        except TimeoutError:
            results.append(ChatResult(False, error="timeout"))
    return results


async def _idle(spec: ChatSpec, n: int, deadline: float) -> tuple[list[ChatResult], int]:
    """Open ``n`` streams, report how many got their response head, hold, close."""
    opened: list[Any] = []

    async def one() -> None:
        checker = TokenChecker(spec.tokens, time.perf_counter())
        proto, _ = await open_stream(spec, checker)
        opened.append(proto)
        assert proto.head_waiter is not None
        await proto.head_waiter

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    ok = sum(1 for t in done if not t.cancelled() and t.exception() is None)
    await asyncio.sleep(1.0)  # let the server settle (first token, buffers)
    _emit({"phase": "opened", "opened": ok})
    await _wait_for_go()
    for proto in opened:
        proto.close()
    results = [ChatResult(True) for _ in range(ok)] + [
        ChatResult(False, error="not opened") for _ in range(n - ok)
    ]
    return results, ok


async def main_async(cfg: dict[str, Any]) -> None:
    """Run one load phase as described by ``cfg`` (see :mod:`bench.scenarios`)."""
    spec = ChatSpec(
        cfg.get("host", "127.0.0.1"),
        cfg["port"],
        cfg["mode"],
        cfg["tokens"],
        cfg["delay_ms"],
        upstream=bool(cfg.get("upstream")),
    )
    warm = ChatSpec(spec.host, spec.port, spec.mode, 5, 0, upstream=spec.upstream)
    for _ in range(cfg.get("warmup", 20)):
        res = await asyncio.wait_for(run_chat(warm), 30)
        if not res.ok:
            _emit({"phase": "error", "error": f"warm-up chat failed: {res.error}"})
            return
    _emit({"phase": "ready"})
    await _wait_for_go()
    n, deadline, kind = cfg["chats"], cfg["deadline"], cfg["kind"]
    cpu0 = time.process_time()
    start = time.perf_counter()
    if kind == "concurrent":
        ramp = float(cfg.get("ramp", 0.0))
        chats = [_after(i * ramp / n, spec) for i in range(n)]
        results = await _bounded(chats, deadline)
    elif kind == "sequential":
        results = await _sequential(spec, n, deadline)
    elif kind == "idle":
        results, _ = await _idle(spec, n, deadline)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    rows = [[r.ok, r.ttft, r.last, r.tokens, r.error, r.delays] for r in results]
    _emit({"phase": "done", "wall": wall, "loadgen_cpu_s": cpu, "results": rows})


def main() -> None:
    """Entry point: the JSON spec is the single argument."""
    raise_nofile_limit()
    cfg = json.loads(sys.argv[1])
    try:
        import uvloop  # noqa: PLC0415  (optional speed-up)

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(main_async(cfg))


if __name__ == "__main__":
    main()
