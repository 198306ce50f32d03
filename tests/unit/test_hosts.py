"""Host validation: CHATSTREAM_ALLOWED_HOSTS and its default (chatstream/hosts.py)."""

from __future__ import annotations

import pytest

from chatstream import create_app
from chatstream.hosts import LOOPBACK_HOSTS
from chatstream.hosts import trusted_hosts
from tests.conftest import UNIT_CONFIG


@pytest.mark.parametrize(
    ("allowed", "bind", "expected"),
    [
        (None, "127.0.0.1", list(LOOPBACK_HOSTS)),  # make serve
        (None, "::1", list(LOOPBACK_HOSTS)),
        (None, "[::1]", list(LOOPBACK_HOSTS)),
        (None, "localhost", list(LOOPBACK_HOSTS)),
        (None, "127.0.0.2", list(LOOPBACK_HOSTS)),
        (None, None, None),  # the Procfile on Heroku: gunicorn.conf.py binds 0.0.0.0
        (None, "0.0.0.0", None),
        (None, "10.1.2.3", None),
        (["Chat.Example.com"], "127.0.0.1", ["chat.example.com"]),  # behind nginx
        (["*"], "127.0.0.1", None),
    ],
)
def test_the_allow_list_and_its_default(allowed, bind, expected):
    assert trusted_hosts(allowed, bind) == expected


def make_client(monkeypatch, bind=None, **config):
    if bind is None:
        monkeypatch.delenv("HOST", raising=False)
    else:
        monkeypatch.setenv("HOST", bind)
    return create_app({**UNIT_CONFIG, **config}).test_client()


def assert_untrusted(response):
    assert response.status_code == 400
    assert response.json["error"]["code"] == "untrusted_host"
    assert "CHATSTREAM_ALLOWED_HOSTS" in response.json["error"]["message"]


def test_configured_hosts_are_served_and_others_refused(monkeypatch):
    client = make_client(monkeypatch, ALLOWED_HOSTS="chat.example.com,.example.org")
    for host in ("chat.example.com", "chat.example.com:8443", "a.example.org"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "example.com", "localhost:8000"):
        assert_untrusted(client.get("/healthz", headers={"Host": host}))


def test_dns_rebinding_post_is_refused_before_anything_runs(monkeypatch):
    client = make_client(monkeypatch, bind="127.0.0.1")
    app = client.application
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    assert_untrusted(client.post("/api/streaming", json={"prompt": "hi"}, headers=evil))
    assert not app.extensions["chatstream"].runner.running
    assert client.post("/api/streaming", json={"prompt": "hi"}).status_code == 202  # localhost


def test_a_foreign_host_never_reaches_the_login_redirect(monkeypatch):
    client = make_client(monkeypatch, bind="127.0.0.1", ACCESS_PASSWORD="a long shared passphrase")
    response = client.get("/", headers={"Host": "evil.example", "Accept": "text/html"})
    assert_untrusted(response)


def test_any_host_when_unset_and_not_on_loopback(monkeypatch):
    client = make_client(monkeypatch)
    assert client.get("/healthz", headers={"Host": "anything.example"}).status_code == 200
