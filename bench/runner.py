"""Run one scenario once against one target and measure it.

Sequence: start Redis (if the target wants it) and the server pinned to its
cores; start the load generator pinned to the other core; let it warm up; read
the server tree's CPU time; run the load; read CPU time and peak RSS again;
stop everything.  A fresh server per measurement keeps ``VmHWM`` (peak RSS)
and leftovers of one scenario out of the next.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO
from typing import Any

from bench import machine
from bench import procstat
from bench.scenarios import Scenario
from bench.scenarios import figures
from bench.server import Server
from bench.server import ServerError
from bench.server import boost_autogroup
from bench.server import free_port
from bench.server import start_redis
from bench.targets import BIN
from bench.targets import LOADGEN_CPUS
from bench.targets import ROOT
from bench.targets import Target
from bench.targets import pinned
from bench.targets import redis_server


class _Lines:
    """Read a pipe's lines in a thread, so that waits on it can time out."""

    def __init__(self, pipe: IO[str]) -> None:
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._q.put(line)
        self._q.put("")

    def next(self, timeout: float) -> dict[str, Any]:
        """The next JSON message; ``{"phase": "error"}`` on EOF or timeout."""
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            return {
                "phase": "error",
                "error": f"load generator silent for {timeout:.0f} s",
            }
        if not line:
            return {"phase": "error", "error": "load generator exited"}
        return dict(json.loads(line))


def _why(msg: dict[str, Any], server: Server) -> str:
    """One line: what the load generator reported, and the server log's last line."""
    last = [ln for ln in server.tail(5).splitlines() if ln.strip()][-1:] or [""]
    return f"{msg.get('error', msg)} | server log: {last[0][:160]}"


def profiler(out: Path) -> list[str]:
    """Command prefix that records a py-spy flame graph of a Python server tree.

    The profiler samples on the server's core, so CPU figures of a profiled run
    are inflated: use ``--profile`` to find hot spots, not to compare.
    """
    return [
        shutil.which("py-spy", path=f"{BIN}:{os.environ.get('PATH', '')}") or "py-spy",
        "record", "--subprocesses", "--nonblocking", "--rate", "250",
        # BENCH_PROFILE_FORMAT=raw: collapsed stacks (one line per stack) to sum up by frame.
        "--format", os.environ.get("BENCH_PROFILE_FORMAT", "flamegraph"),
        "--output", str(out), "--",
    ]  # fmt: skip


def measure(target: Target, sc: Scenario, logdir: Path, profile: bool = False) -> dict[str, Any]:
    """Run ``sc`` on ``target`` once; returns its figures (or ``{"error": ...}``).

    :param profile: record a py-spy flame graph (``<scenario>-<target>.svg``
        beside the logs) when the target is a Python server.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    stem = f"{sc.name}-{target.name}"
    redis: Server | None = None
    upstream: Server | None = None
    server: Server | None = None
    gen: subprocess.Popen[str] | None = None
    env = dict(target.env)
    try:
        if target.redis:
            binary = redis_server()
            if binary is None:
                return {"error": "no redis-server"}
            rport = free_port()
            redis = start_redis(
                binary, rport, target.server_cpus, logdir / f"{stem}-redis.log", logdir
            )
            env["CHATSTREAM_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
        if sc.upstream:
            # The fake OpenAI server shares the load generator's core, as in issue 11.
            uport = free_port()
            upstream = Server(
                [sys.executable, "-m", "bench.fake_upstream", "--port", str(uport)],
                LOADGEN_CPUS,
                {},
                logdir / f"{stem}-upstream.log",
                ROOT,
            )
            upstream.wait_port(uport, 10)
            models = f"t5-d0,t{sc.tokens}-d{sc.delay_ms}"
            env |= {
                "OPENAI_BASE_URL": f"http://127.0.0.1:{uport}/v1",
                "OPENAI_API_KEY": "sk-bench",
                "CHATSTREAM_MODEL": "t5-d0",
                "CHATSTREAM_MODELS": models,
            }
        port = free_port()
        argv = target.command(port)
        if profile and target.python:
            argv = profiler(logdir / f"{stem}.svg") + argv
        server = Server(argv, target.server_cpus, env, logdir / f"{stem}.log", ROOT)
        server.wait_port(port)
        cfg = {
            "port": port, "mode": target.mode, "kind": sc.kind, "chats": sc.chats,
            "tokens": sc.tokens, "delay_ms": sc.delay_ms, "deadline": sc.deadline,
            "ramp": sc.ramp, "upstream": sc.upstream,
        }  # fmt: skip
        cmd = [
            *pinned(target.loadgen_cpus),
            sys.executable,
            "-m",
            "bench.loadgen",
            json.dumps(cfg),
        ]
        gen = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # an autogroup of its own, boosted next
        )
        boost_autogroup(gen.pid)
        assert gen.stdin is not None and gen.stdout is not None
        lines = _Lines(gen.stdout)
        msg = lines.next(60)
        if msg["phase"] != "ready":
            return {"error": _why(msg, server)}

        def tree() -> list[int]:
            assert server is not None
            return server.pids() + (redis.pids() if redis else [])

        quiet = machine.wait_quiet()
        cpu0, rss0 = procstat.cpu_seconds(tree()), procstat.rss_kb(tree())
        up0 = procstat.cpu_seconds(upstream.pids()) if upstream else 0.0
        busy0 = machine.busy_seconds()
        gen.stdin.write("go\n")
        gen.stdin.flush()
        msg = lines.next(sc.deadline + 60)
        extra: dict[str, Any] = {}
        if msg["phase"] == "opened":
            rss1 = procstat.rss_kb(tree())
            opened = max(1, int(msg["opened"]))
            extra["idle_kb_per_stream"] = (rss1 - rss0) / opened
            gen.stdin.write("go\n")
            gen.stdin.flush()
            msg = lines.next(60)
        if msg["phase"] != "done":
            return {"error": _why(msg, server)}
        pids = tree()
        busy = machine.busy_seconds() - busy0
        out = figures(sc, msg) | extra
        out["cpu_s"] = procstat.cpu_seconds(pids) - cpu0
        out["loadgen_cpu_s"] = msg.get("loadgen_cpu_s", 0.0)
        if out.get("tokens"):
            out["cpu_us_per_token"] = out["cpu_s"] / out["tokens"] * 1e6
        ours = out["cpu_s"] + out["loadgen_cpu_s"]
        if upstream is not None:
            out["upstream_cpu_s"] = procstat.cpu_seconds(upstream.pids()) - up0
            ours += out["upstream_cpu_s"]
        # Busy time of everything else on the machine during the load
        # (see bench.machine).
        out["other_cpu_s"] = max(0.0, busy - ours)
        out["busy_before"] = quiet
        out["peak_rss_mb"] = procstat.peak_rss_kb(pids) / 1024
        return out
    except ServerError as exc:
        return {"error": f"server: {exc}"}
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait(5)
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
        if upstream is not None:
            upstream.stop()
