"""The fault suite: each test injects one named fault into real parts on
loopback (gunicorn -k gevent, redis-server, nginx, the fake OpenAI upstream)
and asserts the documented outcome (README, "Failure behaviour").

Every test here is marked ``fault``; every loop is bounded in count and time.
"""

from __future__ import annotations

import pathlib

import pytest

_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.fault)
