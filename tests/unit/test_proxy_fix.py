"""``CHATSTREAM_PROXY_FIX``: which X-Forwarded-* hops the app trusts."""

from __future__ import annotations

import pytest

from chatstream import create_app
from chatstream.errors import ConfigError

BASE = {"TESTING": True, "SECRET_KEY": "test", "ADAPTER": "demo"}
# The peer is the proxy (10.0.0.2); the client sent a forged first hop and the
# proxy appended the real client (198.51.100.7).
FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
    "X-Forwarded-Proto": "https",
}


def hops(**counts):
    return {"x_for": 0, "x_proto": 0, "x_host": 0, "x_port": 0, "x_prefix": 0, **counts}


def seen(app, headers=FORWARDED):
    client = app.test_client()
    response = client.get(
        "/healthz?verbose=1", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )
    body = response.get_json()
    return body["client"], body["scheme"]


def test_off_by_default_the_peer_is_the_client():
    assert create_app(BASE).config["CHATSTREAM_PROXY_FIX"] is None
    assert seen(create_app(BASE)) == ("10.0.0.2", "http")


@pytest.mark.parametrize("value", [1, "1", "x_for=1,x_proto=1", " x_for = 1 , x_proto=1"])
def test_one_hop_trusts_only_the_appended_address(value):
    app = create_app({**BASE, "PROXY_FIX": value})
    assert app.config["CHATSTREAM_PROXY_FIX"] == hops(x_for=1, x_proto=1)
    assert seen(app) == ("198.51.100.7", "https")


def test_two_hops_and_explicit_headers():
    app = create_app({**BASE, "PROXY_FIX": "x_for=2"})
    assert seen(app) == ("203.0.113.9", "http")  # X-Forwarded-Proto is not trusted


def test_zero_is_off():
    app = create_app({**BASE, "PROXY_FIX": "x_for=0"})
    assert app.config["CHATSTREAM_PROXY_FIX"] is None
    assert seen(app) == ("10.0.0.2", "http")


def test_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHATSTREAM_PROXY_FIX", "1")  # parsed as JSON: the int 1
    assert create_app(BASE).config["CHATSTREAM_PROXY_FIX"] == hops(x_for=1, x_proto=1)
    monkeypatch.setenv("CHATSTREAM_PROXY_FIX", "x_for=1,x_host=1")
    assert create_app(BASE).config["CHATSTREAM_PROXY_FIX"] == hops(x_for=1, x_host=1)


@pytest.mark.parametrize("value", ["yes", "x_forr=1", "x_for=-1", "x_for=1,", "x_for=99", "true"])
def test_bad_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("CHATSTREAM_PROXY_FIX", value)
    with pytest.raises(ConfigError, match="CHATSTREAM_PROXY_FIX=.* is invalid: expected a number"):
        create_app(BASE)


def test_healthz_without_verbose_has_no_client():
    body = create_app(BASE).test_client().get("/healthz").get_json()
    assert "client" not in body and body["status"] == "ok"
