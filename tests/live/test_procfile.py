"""The Procfile's ``web`` line, run the way Heroku-like runners run it.

``honcho start -f Procfile -p PORT web`` sets ``PORT`` and runs the line
through a shell from the app root with the venv's ``bin`` on ``PATH``, as a
dyno runs it with the buildpack's Python on ``PATH``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live.conftest import LIVE_ENV
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.client import wait_until
from tests.support.server import ROOT
from tests.support.server import clean_env
from tests.support.server import free_port

pytestmark = pytest.mark.live

VENV_BIN = Path(sys.executable).parent
HONCHO = str(VENV_BIN / "honcho")


def honcho_env(extra: dict[str, str]) -> dict[str, str]:
    env = clean_env({**LIVE_ENV, **extra})
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # The platform's router is what faces the internet; here the app must
    # stay on loopback (gunicorn.conf.py binds HOST, default 0.0.0.0).
    env["HOST"] = "127.0.0.1"
    return env


class Honcho:
    """``honcho start ... web`` on a free port, its output in ``log_path``."""

    def __init__(self, tmp_path: Path, extra: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "honcho.log"
        # An empty env file: a developer's .env must not change the test.
        self.env_file = tmp_path / "empty.env"
        self.env_file.write_text("")
        self.env = honcho_env(extra or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Honcho:
        command = [HONCHO, "--no-colour", "-e", str(self.env_file), "start"]
        command += ["-f", "Procfile", "-p", str(self.port), "web"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"honcho exited early:\n{self.log()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout=30, interval=0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def processes(self) -> list[str]:
        """Command lines of every process under honcho (from /proc)."""
        assert self.proc is not None
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
        return found

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # honcho passes it on to gunicorn
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_honcho_check_validates_the_procfile():
    result = subprocess.run(
        [HONCHO, "check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "web" in result.stdout + result.stderr


def test_web_line_binds_port_and_streams_a_reply(tmp_path):
    with Honcho(tmp_path) as web, httpx.Client(timeout=30) as client:
        url = submit(client, web.url, prompt="hi", options={"tokens": 20})
        events = read_events(client, url)
        assert text_of(events) == "".join(f"{i} " for i in range(20))
        assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
        # The seed contract and the chat page work through it too.
        assert "0 1 2" in text_of(read_events(client, web.url + "/api/streaming"))
        assert client.get(web.url + "/").status_code == 200
    log = web.log()
    assert f"Listening at: http://127.0.0.1:{web.port}" in log
    assert "Worker exiting" in log or "Shutting down" in log  # SIGTERM reached gunicorn


def test_web_concurrency_above_one_without_redis_runs_one_worker(tmp_path):
    # Heroku's Python buildpack sets WEB_CONCURRENCY from the dyno size when it
    # is unset. With the in-memory store a POST and its GET must meet in one
    # process, so gunicorn.conf.py says why and runs a single worker.
    with (
        Honcho(tmp_path, {"WEB_CONCURRENCY": "3"}) as web,
        httpx.Client(timeout=30) as client,
    ):
        url = submit(client, web.url, prompt="hi", options={"tokens": 5})
        assert text_of(read_events(client, url)) == "0 1 2 3 4 "
        gunicorns = [p for p in web.processes() if "bin/gunicorn -c" in p]
    # The master and one worker (same command line; `sh -c` is not counted).
    assert len(gunicorns) == 2, gunicorns
    assert "WEB_CONCURRENCY=3 needs CHATSTREAM_REDIS_URL" in web.log()
