from __future__ import annotations

import os

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

#: What the developer's shell may set that would change an app under test.
_SEALED = ("CHATSTREAM_", "OPENAI_", "SECRET_KEY", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")


@pytest.fixture(scope="session", autouse=True)
def sealed_environment():
    """Run every test as if the shell set no chatstream, OpenAI or secret settings.

    Session-scoped, so it is in place before module-scoped servers start; a
    test that wants a variable sets it with ``monkeypatch.setenv``.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(_SEALED):
                patch.delenv(name)
        yield


@pytest.fixture
def app():
    """A chatstream app on the threading driver, demo model, fast timers."""
    yield create_app(UNIT_CONFIG)


@pytest.fixture
def client(app):
    return app.test_client()
