"""Run a real ``gunicorn -k gevent`` chatstream server on a loopback port.

Modelled on werkzeug's ``tests/conftest.py`` ``DevServerClient``: reserve a
free port, ``Popen`` gunicorn with its config in the environment, log to a
file, poll until it answers, then ``terminate()`` and ``wait()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
_SCRUB = ("CHATSTREAM_", "OPENAI_", "WEB_CONCURRENCY", "PORT", "GUNICORN_CMD_ARGS")


def child_pids(pid: int) -> list[int]:
    """PIDs of the processes whose parent is ``pid`` (a master's workers)."""
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(child) for child in out.split()]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment without chatstream/OpenAI settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env["SECRET_KEY"] = "test-secret-key-not-for-production"
    env["PYTHONUNBUFFERED"] = "1"
    # Every test client is 127.0.0.1: the per-address POST rate limit and
    # stream cap are off unless a test turns them on (tests/live/test_access_live.py).
    env["CHATSTREAM_RATE_LIMIT"] = "off"
    env["CHATSTREAM_MAX_STREAMS_PER_CLIENT"] = "0"
    env.update(extra or {})
    return env


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, log: Callable[[], str], name: str, timeout: float
) -> bool:
    """Poll ``url`` until it answers 200 (True), or time out (False).

    :raises RuntimeError: the process exited early (with its log).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


class GunicornServer:
    """A gunicorn gevent server for one test module.

    :param env: extra environment (``CHATSTREAM_*`` settings ...).
    :param workers: gevent workers (``WEB_CONCURRENCY``).
    :param host: loopback address to bind.
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        workers: int = 1,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.env = clean_env({"WEB_CONCURRENCY": str(workers), **(env or {})})
        self._log_dir = Path(log_dir or tempfile.mkdtemp(prefix="chatstream-gunicorn-"))
        self.log_path = self._log_dir / f"gunicorn-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> GunicornServer:
        bind = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "gunicorn.conf.py",
                    "-b",
                    bind,
                    "wsgi:app",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_ready(self.proc, self.url + "/healthz", self.log, "gunicorn", timeout):
            return self
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def worker_pids(self) -> list[int]:
        """PIDs of the gunicorn workers (children of the master)."""
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
