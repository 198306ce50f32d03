from __future__ import annotations

import pytest

from tests.support.server import GunicornServer

LIVE_ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_DEMO_DELAY_MS": "1",
    "CHATSTREAM_HEARTBEAT_S": "0.2",
    "CHATSTREAM_DETACH_GRACE_S": "0.5",
    "CHATSTREAM_ATTACH_GRACE_S": "5",
    "CHATSTREAM_SWEEP_S": "0.05",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real gunicorn -k gevent server per test module."""
    with GunicornServer(LIVE_ENV, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv
