from __future__ import annotations

import pytest

from chatstream import create_app

#: The config of unit-test apps: threading driver, demo model, fast timers.
UNIT_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test",
    "ADAPTER": "demo",
    "DEMO_DELAY_MS": 0,
    "HEARTBEAT_S": 0.2,
    "SWEEP_S": 0.05,
}


@pytest.fixture
def app():
    """A chatstream app on the threading driver, demo model, fast timers."""
    yield create_app(UNIT_CONFIG)


@pytest.fixture
def client(app):
    return app.test_client()
