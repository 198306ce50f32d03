"""The servers under test: chatstream (several set-ups) and the three peers.

A :class:`Target` knows how to build its command line for a port, which
environment it needs, which cores it is pinned to, and which form of the
protocol the load generator must speak to it.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from bench.chat import Mode

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: Cores: the server (and Redis) on one, the load generator on the other.
SERVER_CPUS = "0"
LOADGEN_CPUS = "1"
ALL_CPUS = "0,1"


#: Priority boost for the server, Redis and the load generator.  The machine is
#: shared with other work (test suites, browsers); at nice -15 a benchmarked
#: process weighs as much as ~28 ordinary ones on a contended core (CFS weights),
#: without real-time scheduling's risk of starving the machine.  Without root,
#: ``nice`` warns and runs the command at normal priority.
NICE = "-15"


def pinned(cpus: str) -> list[str]:
    """Command prefix that boosts priority and pins to ``cpus`` (``""``: no pinning)."""
    return ["nice", "-n", NICE] + (["taskset", "-c", cpus] if cpus else [])


def _gunicorn() -> str:
    return str(BIN / "gunicorn") if (BIN / "gunicorn").exists() else "gunicorn"


@dataclass(frozen=True, slots=True)
class Target:
    """One server set-up to benchmark.

    :param name: short id used on the command line and in the table.
    :param argv: command; ``{port}`` is replaced by the listening port.
    :param mode: ``postget`` or ``single`` (see :mod:`bench.chat`).
    :param peer: a peer (compared against) rather than chatstream itself.
    :param redis: start a private redis-server and pass its URL.
    :param server_cpus: ``taskset`` list for the server (and Redis).
    :param loadgen_cpus: ``taskset`` list for the load generator.
    """

    name: str
    argv: tuple[str, ...]
    mode: Mode
    peer: bool
    description: str
    env: dict[str, str] = field(default_factory=dict)
    redis: bool = False
    server_cpus: str = SERVER_CPUS
    loadgen_cpus: str = LOADGEN_CPUS

    @property
    def python(self) -> bool:
        """Whether the server is a Python process (so py-spy can profile it)."""
        return not self.argv[0].endswith("node")

    def command(self, port: int) -> list[str]:
        """The command line for ``port``, without pinning."""
        return [a.replace("{port}", str(port)) for a in self.argv]


def _chatstream(name: str, mode: Mode, desc: str, workers: int = 1, redis: bool = False) -> Target:
    argv = (
        _gunicorn(), "-c", "gunicorn.conf.py", "-b", "127.0.0.1:{port}",
        "--worker-connections", "10000", "wsgi:app",
    )  # fmt: skip
    env = {
        "WEB_CONCURRENCY": str(workers),
        "CHATSTREAM_ADAPTER": "demo",
        "CHATSTREAM_MAX_STREAMS": "10000",
        # Every simulated user comes from 127.0.0.1: lift the per-address limits.
        "CHATSTREAM_RATE_LIMIT": "off",
        "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "0",
        "CHATSTREAM_START_MAX_LAG_MS": "0",  # the demo's default; the openai targets set theirs
    }
    cpus = ALL_CPUS if workers > 1 else SERVER_CPUS
    gen = ALL_CPUS if workers > 1 else LOADGEN_CPUS
    return Target(name, argv, mode, False, desc, env, redis, cpus, gen)


def _flask(name: str, mode: Mode, desc: str) -> Target:
    argv = (
        _gunicorn(), "-k", "gevent", "-w", "1", "--worker-connections", "10000",
        "--no-control-socket", "--backlog", "4096", "-b", "127.0.0.1:{port}",
        "bench.peers.flask_naive:app",
    )  # fmt: skip
    return Target(name, argv, mode, True, desc)


def _chatstream_openai(unpaced: bool = False) -> Target:
    name = "chatstream-openai-unpaced" if unpaced else "chatstream-openai"
    base = _chatstream(name, "postget", "")
    # Start pacing as the openai adapter has it by default (3 ms), or off.
    env = {**base.env, "CHATSTREAM_ADAPTER": "openai", "CHATSTREAM_START_MAX_LAG_MS": ""}
    desc = "chatstream, 1 gevent worker, openai adapter, POST then GET"
    if unpaced:
        env["CHATSTREAM_START_MAX_LAG_MS"] = "0"
        desc += ", start pacing off (`CHATSTREAM_START_MAX_LAG_MS=0`)"
    return Target(base.name, base.argv, "postget", False, desc, env)


def _uvicorn(app: str) -> tuple[str, ...]:
    return (
        str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
        "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    )  # fmt: skip


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        _chatstream("chatstream", "postget", "chatstream, 1 gevent worker, POST then GET"),
        _chatstream("chatstream-single", "single", "chatstream, 1 gevent worker, single request"),
        _chatstream(
            "chatstream-redis",
            "postget",
            "chatstream + Redis store, 1 worker",
            redis=True,
        ),
        _chatstream("chatstream-redis-2w", "postget", "chatstream + Redis, 2 workers", 2, True),
        Target(
            "node",
            ("node", str(ROOT / "bench/peers/node/server.js"), "{port}"),
            "postget",
            True,
            "Node + Express, seed design made per-stream, POST then GET",
        ),
        Target(
            "fastapi",
            (
                str(BIN / "uvicorn"),
                "bench.peers.fastapi_sse:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "4096",
            ),  # fmt: skip
            "postget",
            True,
            "FastAPI + sse-starlette on uvicorn (uvloop, httptools), POST then GET",
        ),
        _flask(
            "flask-single",
            "single",
            "naive Flask generator on gunicorn gevent, single request",
        ),
        _flask(
            "flask-postget",
            "postget",
            "naive Flask generator on gunicorn gevent, POST then GET",
        ),
        # Upstream scenarios (U*): each proxies bench.fake_upstream with its official SDK.
        _chatstream_openai(),
        _chatstream_openai(unpaced=True),
        Target(
            "node-openai",
            ("node", str(ROOT / "bench/peers/node/openai_server.js"), "{port}"),
            "postget",
            True,
            "Node + Express + openai npm 6.x, per-stream buffer, POST then GET",
        ),
        Target(
            "fastapi-openai",
            _uvicorn("bench.peers.fastapi_openai:app"),
            "postget",
            True,
            "FastAPI + AsyncOpenAI + sse-starlette on uvicorn, POST then GET",
        ),
        Target(
            "flask-openai",
            (
                _gunicorn(),
                "-k",
                "gevent",
                "-w",
                "1",
                "--worker-connections",
                "10000",
                "--no-control-socket",
                "--backlog",
                "4096",
                "-b",
                "127.0.0.1:{port}",
                "bench.peers.flask_openai:app",
            ),  # fmt: skip
            "single",
            True,
            "naive Flask generator + openai.OpenAI on gunicorn gevent, single request",
        ),
    )
}

#: Targets run by default: chatstream (when present) and every peer.
DEFAULT_TARGETS = (
    "chatstream",
    "chatstream-single",
    "node",
    "fastapi",
    "flask-single",
    "flask-postget",
)
#: Targets of the upstream scenarios (U*), chatstream first.
UPSTREAM_TARGETS = (
    "chatstream-openai",
    "chatstream-openai-unpaced",
    "node-openai",
    "fastapi-openai",
    "flask-openai",
)
#: Set-ups compared in S4 (scale-out), against ``chatstream``.
SCALEOUT_TARGETS = ("chatstream", "chatstream-redis", "chatstream-redis-2w")


def chatstream_available() -> bool:
    """Whether the repository holds the chatstream server yet."""
    return (ROOT / "wsgi.py").exists() and (ROOT / "gunicorn.conf.py").exists()


def redis_server() -> str | None:
    """Path of a redis-server binary, if any."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
