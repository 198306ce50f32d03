"""Fixtures for the chat page tests: one real gunicorn server, Debian's Chromium.

Playwright cannot download its own browser here, so ``browser_type_launch_args``
points it at the system ``chromium``. The server runs the demo adapter, whose
request ``options`` (``tokens``, ``delay_ms``, ``drop_after``) make answers
deterministic; the page forwards them from ``window.chatstreamRequestExtra``
(see :func:`set_request_extra`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import GunicornServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Two models, so the page shows its model picker.
MODELS = ("demo", "demo-large")

SERVER_ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_MODEL": MODELS[0],
    "CHATSTREAM_MODELS": ",".join(MODELS),
    # The demo's own reply (no options) streams fast; tests that sample the DOM
    # mid-stream pass an explicit, slow ``delay_ms`` instead.
    "CHATSTREAM_DEMO_DELAY_MS": "3",
    # Reconnect quickly after the dropped-connection test closes a stream.
    "CHATSTREAM_RETRY_MS": "300",
    "CHATSTREAM_HEARTBEAT_S": "1",
    # Every test's POSTs come from 127.0.0.1: keep the per-client limits out of it.
    "CHATSTREAM_RATE_LIMIT": "off",
    "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "0",
}


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any],
) -> dict[str, Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    return {
        **browser_type_launch_args,
        "executable_path": chromium,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def chat_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GunicornServer]:
    with GunicornServer(SERVER_ENV, log_dir=tmp_path_factory.mktemp("browser-server")) as srv:
        yield srv


@pytest.fixture(scope="session")
def base_url(chat_server: GunicornServer) -> str:
    return chat_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        **browser_context_args,
        "base_url": base_url,
        "viewport": {"width": 1280, "height": 860},
        "permissions": ["clipboard-read", "clipboard-write"],
    }


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from tests/browser/node_modules (``make test`` runs ``npm ci`` there)."""
    path = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
    if not path.exists():
        pytest.fail("axe-core is not installed: cd tests/browser && npm ci")
    return path
