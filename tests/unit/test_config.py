"""Configuration: environment loading, validation with a clear message."""

from __future__ import annotations

import pytest

from chatstream import create_app
from chatstream.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CHATSTREAM_HEARTBEAT_S", "abc", "CHATSTREAM_HEARTBEAT_S='abc' is invalid"),
        ("CHATSTREAM_HEARTBEAT_S", "0", "CHATSTREAM_HEARTBEAT_S=0 is invalid"),
        ("CHATSTREAM_MAX_STREAMS", "1.5", "CHATSTREAM_MAX_STREAMS=1.5 is invalid"),
        ("CHATSTREAM_ADAPTER", "nosuch.module:thing", "CHATSTREAM_ADAPTER='nosuch.module:thing'"),
        ("CHATSTREAM_ADAPTER", "weird", "CHATSTREAM_ADAPTER='weird'"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        create_app()
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_default_model_must_be_an_allowed_one(monkeypatch):
    monkeypatch.setenv("CHATSTREAM_MODELS", "a,b")
    monkeypatch.setenv("CHATSTREAM_MODEL", "c")
    with pytest.raises(ConfigError, match="CHATSTREAM_MODEL='c' is invalid"):
        create_app()


def test_environment_is_loaded(monkeypatch):
    monkeypatch.setenv("CHATSTREAM_HEARTBEAT_S", "2.5")
    monkeypatch.setenv("CHATSTREAM_MODELS", "demo, other")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    app = create_app()
    assert app.config["CHATSTREAM_HEARTBEAT_S"] == 2.5
    assert app.config["CHATSTREAM_MODELS"] == ["demo", "other"]
    assert app.config["SECRET_KEY"] == "s3cret"


def test_default_adapter_is_demo_without_key_and_openai_with(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert create_app().config["CHATSTREAM_ADAPTER"] == "demo"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    app = create_app()
    assert app.config["CHATSTREAM_ADAPTER"] == "openai"
    assert app.config["CHATSTREAM_MODEL"] == "gpt-4o-mini"


def test_secret_key_is_generated_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    app = create_app()
    assert len(app.config["SECRET_KEY"]) >= 32
    assert "SECRET_KEY is not set" in caplog.text


def test_dotted_path_adapter(monkeypatch):
    monkeypatch.setenv("CHATSTREAM_ADAPTER", "tests.unit.plugin_adapter:factory")
    app = create_app()
    client = app.test_client()
    url = client.post("/api/streaming", json={"prompt": "x"}).json["stream_url"]
    assert b'"token":"plugged"' in client.get(url).data
