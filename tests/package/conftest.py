"""Fixtures for the package tests: the wheel and sdist built from this checkout,
and a fresh venv with only the wheel (and its dependencies) installed."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

# Debian's Chromium for pytest-playwright's ``browser`` (as in tests/browser).
from tests.browser.conftest import browser_type_launch_args  # noqa: F401
from tests.support.server import clean_env
from tests.support.server import free_port
from tests.support.server import wait_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """``python -m build`` of the checkout: the folder holding the wheel and the sdist."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def wheel(dist) -> Path:
    (path,) = dist.glob("chatstream-*.whl")
    return path


@pytest.fixture(scope="session")
def sdist(dist) -> Path:
    (path,) = dist.glob("chatstream-*.tar.gz")
    return path


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv (no checkout on its path) with the wheel installed: its ``bin``."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    # The pip cache and the machine's pip config make this a local install.
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return bin_dir


@pytest.fixture(scope="module")
def host_server(tmp_path_factory):
    """tests/package/host_wsgi.py (chatstream mounted under /chat) on gunicorn -k gevent."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("host") / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:chatstream.gunicorn_conf"]
            + ["-b", f"127.0.0.1:{port}", "tests.package.host_wsgi:app"],
            cwd=ROOT,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(proc, url + "/events/", log_path.read_text, "gunicorn", 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
