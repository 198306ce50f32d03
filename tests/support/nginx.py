"""Run a real ``nginx`` from a temp dir in front of a chatstream server.

The site is ``deploy/nginx.conf`` itself, with only its addresses and the SSE
``proxy_read_timeout`` substituted, wrapped in a minimal main config that
keeps everything (pid, logs, ``*_temp_path``) inside the temp dir:
``nginx -e stderr -p DIR -c nginx.conf`` with ``daemon off``, stopped with
SIGTERM. No root, no system config, nothing left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ROOT
from tests.support.server import free_port
from tests.support.server import wait_ready

SITE = ROOT / "deploy" / "nginx.conf"

MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    # Like a distribution default, but compressing every type: the site's
    # `gzip off` for the event stream must win over it.
    gzip on;
    gzip_types *;

{site}
}}
"""


def nginx_binary() -> str:
    """The nginx executable; skip without it, fail loudly in CI (``make test`` installs it)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)),
        None,
    )
    if found:
        return found
    message = "nginx is not installed (scripts/install-system-deps.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _substitute(text: str, old: str, new: str) -> str:
    # Exactly one match, so a change to deploy/nginx.conf that the test would
    # silently stop exercising fails here instead.
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"deploy/nginx.conf: expected {old!r} once, found it {count} times")
    return text.replace(old, new)


def render_site(upstream_port: int, port: int, read_timeout: str) -> str:
    """``deploy/nginx.conf`` listening on ``127.0.0.1:port`` in front of ``upstream_port``."""
    site = SITE.read_text()
    site = _substitute(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};")
    site = _substitute(site, "listen 80;", f"listen 127.0.0.1:{port};")
    site = _substitute(site, "listen [::]:80;", "")
    return _substitute(site, "proxy_read_timeout 300s;", f"proxy_read_timeout {read_timeout};")


class NginxServer:
    """``deploy/nginx.conf`` served by a real nginx on a free loopback port.

    :param upstream_port: the gunicorn port on 127.0.0.1.
    :param directory: an empty temp dir for config, pid, logs and temp files.
    :param read_timeout: the SSE location's ``proxy_read_timeout``.
    """

    def __init__(
        self,
        upstream_port: int,
        directory: str | os.PathLike[str],
        *,
        read_timeout: str = "300s",
    ) -> None:
        self.binary = nginx_binary()
        self.port = free_port()
        self.dir = Path(directory).resolve()
        self.config = MAIN.format(
            dir=self.dir, site=render_site(upstream_port, self.port, read_timeout)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def start(self, timeout: float = 15.0) -> NginxServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "nginx.conf").write_text(self.config)
        with open(self.dir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                [self.binary, "-e", "stderr", "-p", str(self.dir), "-c", "nginx.conf"],
                cwd=self.dir,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # /healthz through nginx proves it listens and reaches the upstream.
        if wait_ready(self.proc, self.url + "/healthz", self.log, "nginx", timeout):
            return self
        self.stop()
        raise RuntimeError(f"nginx did not become ready:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
