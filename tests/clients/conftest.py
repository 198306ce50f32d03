"""Third-party SSE clients (not written here) read chatstream exactly.

Every test here is marked ``clients``. One real gunicorn serves the whole
suite; each test reaches it through its own :class:`CuttingProxy`, which cuts
an event-stream response mid-event so the client must resume by itself.
Answers come from the demo adapter's ``options``: exactly ``tokens`` tokens
``"0 "``, ``"1 "``, ... (``chatstream/adapters/demo.py``).

The npm clients are pinned in ``package.json``/``package-lock.json`` and
installed by ``make test`` (``npm ci``).
"""

from __future__ import annotations

import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS
from tests.support.proxy import CuttingProxy
from tests.support.server import GunicornServer

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parents[1]
NODE_MODULES = HERE / "node_modules"

SERVER_ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_DEMO_DELAY_MS": "2",
    # Reconnect quickly after a cut (EventSource and requests-sse honour it).
    "CHATSTREAM_RETRY_MS": "200",
    "CHATSTREAM_HEARTBEAT_S": "1",
    "CHATSTREAM_ATTACH_GRACE_S": "30",
}

#: Tokens per answer and the events after which the proxy cuts.
TOKENS = 40
CUT_AFTER = 12
#: Options that make the demo answer ``0 `` .. ``TOKENS-1 `` (a few ms apart, so
#: the cut lands while the model is still generating, most of the time; the
#: tests hold either way).
OPTIONS = {"tokens": TOKENS, "delay_ms": 5}


def expected(count: int = TOKENS) -> list[str]:
    return [f"{i} " for i in range(count)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.clients)


@pytest.fixture(scope="session")
def clients_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    with GunicornServer(SERVER_ENV, log_dir=tmp_path_factory.mktemp("clients-server")) as srv:
        yield srv


@pytest.fixture
def proxy(clients_server: GunicornServer) -> Iterator[CuttingProxy]:
    with CuttingProxy(("127.0.0.1", clients_server.port)) as cutting:
        yield cutting


@pytest.fixture(scope="session")
def node_modules() -> pathlib.Path:
    if not (NODE_MODULES / ".package-lock.json").exists():
        pytest.fail("npm clients missing: run `make test` (npm ci in tests/clients)")
    return NODE_MODULES


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is missing (Node 20 is needed for tests/clients)")
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    return {**browser_type_launch_args, "executable_path": chromium, "args": CHROMIUM_ARGS}


def readme_example(marker: str) -> str:
    """The README code block whose first line is ``# chatstream example: <marker>``.

    The README's client examples are the code these tests run.
    """
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```(?:python|js)\n(.*?)```", text, flags=re.S):
        first = block.splitlines()[0]
        if first.lstrip("#/ ").strip() == f"chatstream example: {marker}":
            return str(block)
    raise AssertionError(f"README has no example marked {marker!r}")
