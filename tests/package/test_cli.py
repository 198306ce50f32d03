"""The ``chatstream`` command (chatstream/cli.py) and the Redis extra's start-up error."""

from __future__ import annotations

import sys

import httpx
import pytest

from chatstream import cli
from chatstream import create_app
from chatstream.errors import ConfigError
from tests.live.conftest import LIVE_ENV
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.proxy import CuttingProxy
from tests.support.server import GunicornServer


def test_check_prints_the_effective_settings_with_secrets_masked(monkeypatch, capsys):
    monkeypatch.setenv("CHATSTREAM_ACCESS_PASSWORD", "hunter2-password")
    monkeypatch.setenv("CHATSTREAM_API_TOKENS", "tok-" + "s" * 28)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("SECRET_KEY", "signing-secret")
    monkeypatch.setenv("CHATSTREAM_REDIS_URL", "redis://user:redis-pass@db:6379/0")
    monkeypatch.setenv("CHATSTREAM_HEARTBEAT_S", "7")
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    for secret in ("hunter2-password", "s" * 28, "sk-very-secret", "signing-secret", "redis-pass"):
        assert secret not in out
    assert "CHATSTREAM_HEARTBEAT_S=7.0" in out.splitlines()
    assert "CHATSTREAM_ADAPTER=openai" in out.splitlines()
    assert "CHATSTREAM_ACCESS_PASSWORD=<set, hidden>" in out.splitlines()
    assert "CHATSTREAM_REDIS_URL=redis://user:***@db:6379/0" in out.splitlines()


def test_check_names_the_bad_variable(monkeypatch, capsys):
    monkeypatch.setenv("CHATSTREAM_MAX_STREAMS", "many")
    assert cli.main(["check"]) == cli.FAILED
    assert "CHATSTREAM_MAX_STREAMS='many' is invalid" in capsys.readouterr().err


def test_serve_refuses_more_workers_without_redis(monkeypatch, capsys):
    def no_exec(*args):
        raise AssertionError("gunicorn must not start")

    monkeypatch.setattr(cli.os, "execve", no_exec)
    assert cli.main(["serve", "--workers", "2"]) == cli.USAGE
    assert "CHATSTREAM_REDIS_URL" in capsys.readouterr().err
    monkeypatch.setenv("CHATSTREAM_HEARTBEAT_S", "-1")
    assert cli.main(["serve"]) == cli.FAILED


def test_serve_runs_gunicorn_with_the_package_settings(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: seen.update(argv=argv, env=env))
    cli.main(["serve", "--host", "127.0.0.2", "--port", "9999"])
    assert seen["argv"][1:] == ["-m", "gunicorn", "-c", cli.GUNICORN_CONFIG, cli.WSGI_APP]
    assert (seen["env"]["HOST"], seen["env"]["PORT"], seen["env"]["WEB_CONCURRENCY"]) == (
        "127.0.0.2",
        "9999",
        "1",
    )


def test_redis_url_without_the_redis_package_is_a_clear_start_up_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    for name in [name for name in sys.modules if name.startswith("chatstream.store.redis")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("CHATSTREAM_REDIS_URL", "redis://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"pip install 'chatstream\[redis\]'"):
        create_app({"SECRET_KEY": "x"})
    with pytest.raises(ConfigError, match=r"chatstream\[redis\]"):
        cli.effective_settings()


def test_api_url():
    assert cli.api_url("http://h:1") == "http://h:1/api/streaming"
    assert cli.api_url("http://h:1/chat/api/streaming") == "http://h:1/chat/api/streaming"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**LIVE_ENV, "CHATSTREAM_RETRY_MS": "50"}
    with GunicornServer(env, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.mark.live
def test_ask_resumes_after_a_cut_with_nothing_lost_or_repeated(server, capsys):
    with httpx.Client() as client:
        expected = text_of(read_events(client, submit(client, server.url, prompt="cut me")))
    with CuttingProxy(("127.0.0.1", server.port)) as proxy:
        proxy.arm(after_events=20, times=2)
        assert cli.main(["ask", "cut me", "--url", proxy.url]) == 0
        assert proxy.cuts == 2
    assert capsys.readouterr().out == expected + "\n"


@pytest.mark.live
def test_ask_reports_a_refused_prompt(server, capsys):
    assert cli.main(["ask", "x", "--url", server.url, "--model", "nope"]) == cli.FAILED
    assert "chatstream ask: unknown_model: " in capsys.readouterr().err


def test_the_gunicorn_settings_import_neither_flask_nor_ssl():
    """gunicorn's master imports the settings module before forking gevent
    workers; ssl imported there would be patched too late in each worker."""
    import subprocess

    code = (
        "import sys, chatstream.gunicorn_conf\n"
        "print(sorted(m for m in ('ssl', 'flask', 'openai', 'gevent') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
