"""chatstream mounted in an existing Flask app with the extension.

The host has its own blueprint named ``events``, its own login session and
its own ``index.html``; chatstream is mounted under ``/chat`` with a custom
adapter. The host's routes, session, error pages and config names stay its
own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint
from flask import Flask
from flask import abort
from flask import render_template
from flask import session

from chatstream import Chatstream
from chatstream.errors import ConfigError
from tests.unit.test_views import sse_events

TOKEN = "x" * 32


class EchoAdapter:
    """A custom adapter: the user's last message, word by word, upper-cased."""

    def stream(self, request: Any) -> Iterator[str]:
        for word in request.messages[-1]["content"].split():
            yield word.upper() + " "

    def close(self) -> None:
        pass


class EchoFactory:
    name = "echo"

    def __call__(self) -> EchoAdapter:
        return EchoAdapter()


def echo_factory(settings: Mapping[str, Any]) -> EchoFactory:
    return EchoFactory()


def host_app(tmp_path, **config: Any) -> Flask:
    """An existing app: an ``events`` blueprint, a login session, its own index.html."""
    (tmp_path / "index.html").write_text("HOST INDEX for {{ session.get('user') }}")
    app = Flask("host", template_folder=str(tmp_path))
    app.config.update(SECRET_KEY="host secret", TESTING=True, **config)
    events = Blueprint("events", __name__, url_prefix="/events")

    @events.get("/")
    def calendar() -> str:
        return "host calendar"

    @app.post("/login")
    def login() -> str:
        session["user"] = "alice"
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return session.get("user") or abort(401)

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    app.register_blueprint(events)
    app.config.update(CHATSTREAM_MODEL="echo", CHATSTREAM_RATE_LIMIT="off")
    Chatstream(app, url_prefix="/chat/api", page_prefix="/chat", adapter=echo_factory)
    return app


def test_mounted_next_to_a_host_events_blueprint_with_the_host_session_intact(tmp_path):
    app = host_app(tmp_path)
    client = app.test_client()
    assert client.post("/login").status_code == 200
    host_cookie = client.get_cookie("session").value

    submitted = client.post("/chat/api/streaming", json={"prompt": "hello host app"})
    assert submitted.status_code == 202
    stream_url = submitted.json["stream_url"]
    assert re.fullmatch(r"/chat/api/streaming/[\w-]+", stream_url)
    events = sse_events(client.get(stream_url).data)
    assert "".join(e[2].get("token", "") for e in events) == "HELLO HOST APP "
    assert events[-1][1] == "end"
    # The id-less seed contract reads chatstream's own cookie.
    assert sse_events(client.get("/chat/api/streaming").data) == events

    assert client.get_cookie("chatstream_session") is not None
    assert client.get_cookie("session").value == host_cookie
    assert client.get("/whoami").text == "alice"
    assert client.get("/events/").text == "host calendar"
    assert client.get("/").text == "HOST INDEX for alice"


def test_the_page_and_its_assets_under_the_prefix(tmp_path):
    client = host_app(tmp_path).test_client()
    page = client.get("/chat/")
    assert page.status_code == 200 and "HOST INDEX" not in page.text
    assert 'data-api-url="/chat/api/streaming"' in page.text
    assert 'data-login-url="/chat/login"' in page.text
    assets = re.findall(r'(?:href|src)="(/chat/static/[^"]+)"', page.text)
    assert len(assets) == 4
    for asset in assets:
        with client.get(asset) as response:
            assert response.status_code == 200, asset


def test_config_is_namespaced_and_the_host_keeps_its_names(tmp_path):
    app = host_app(tmp_path)
    assert app.config["CHATSTREAM_MAX_PROMPT_CHARS"] == 32_000
    assert app.config["CHATSTREAM_HEARTBEAT_S"] == 15.0
    for plain in ("MAX_PROMPT_CHARS", "HEARTBEAT_S", "ADAPTER", "RATE_LIMIT", "MODELS"):
        assert plain not in app.config
    assert app.config["SECRET_KEY"] == "host secret"
    assert app.config["MAX_CONTENT_LENGTH"] is None
    assert app.extensions["chatstream"].adapter_name == "echo"
    with pytest.raises(ConfigError, match="CHATSTREAM_HEARTBEAT_S='abc' is invalid"):
        host_app(tmp_path / "..", CHATSTREAM_HEARTBEAT_S="abc")


def test_access_errors_and_headers_stay_inside_chatstream(tmp_path):
    app = host_app(tmp_path, CHATSTREAM_ACCESS_PASSWORD="pw", CHATSTREAM_API_TOKENS=TOKEN)
    client = app.test_client()
    # chatstream's guard answers its own routes ...
    refused = client.post("/chat/api/streaming", json={"prompt": "x"})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert client.get("/chat/", headers={"Accept": "text/html"}).headers["Location"] == (
        "/chat/login?next=/chat/"
    )
    # ... and never the host's, which keep the host's error pages and headers.
    host = client.get("/events/")
    assert host.text == "host calendar"
    assert "Content-Security-Policy" not in host.headers
    assert "X-Request-ID" not in host.headers
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert client.get("/whoami").status_code == 401 and client.get("/whoami").mimetype == (
        "text/html"
    )
    # A password login sets chatstream's cookie only.
    client.post("/login")
    host_cookie = client.get_cookie("session").value
    assert client.post("/chat/login", json={"password": "pw"}).json == {"status": "ok"}
    assert client.post("/chat/api/streaming", json={"prompt": "x"}).status_code == 202
    assert client.get_cookie("session").value == host_cookie
    assert client.get("/whoami").text == "alice"
    assert client.get("/chat/api/streaming/nope").json["error"]["code"] == "stream_not_found"


def test_one_extension_object_many_apps(tmp_path):
    ext = Chatstream(url_prefix="/api", page=False)
    apps = []
    for name in ("one", "two"):
        app = Flask(name)
        app.config.update(SECRET_KEY=name, CHATSTREAM_ADAPTER="demo", CHATSTREAM_DEMO_DELAY_MS=0)
        ext.init_app(app)
        apps.append(app)
    one, two = (app.test_client() for app in apps)
    url = one.post("/api/streaming", json={"prompt": "x"}).json["stream_url"]
    assert one.get(url).status_code == 200
    assert two.get(url).status_code == 404  # each app has its own store
    assert one.get("/").status_code == 404  # page=False: no page
    assert apps[0].extensions["chatstream"] is not apps[1].extensions["chatstream"]


def test_the_readme_mounting_example_runs():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Mounting chatstream in an existing Flask app", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    client = namespace["app"].test_client()
    assert client.get("/chat/").status_code == 200
    url = client.post("/chat/api/streaming", json={"prompt": "make it loud"}).json["stream_url"]
    text = "".join(e[2].get("token", "") for e in sse_events(client.get(url).data))
    assert text == "MAKE IT LOUD "


def test_no_module_reads_a_chatstream_setting_from_the_app_config_by_its_short_name():
    """Mounted in a host, ``current_app.config["RETRY_MS"]`` does not exist: the
    code reads settings through ``extension.settings()`` (or ``appconfig.Settings``)."""
    from chatstream import config

    package = Path(__file__).resolve().parents[2] / "chatstream"
    pattern = re.compile(r"""app\.config(?:\.get\(|\[)\s*["'](\w+)["']""")
    offenders = [
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        for name in pattern.findall(path.read_text())
        if name in config.SETTINGS or name in config.NAMESPACED_EXTRA
    ]
    assert offenders == []


@pytest.mark.live
def test_streams_through_the_host_app_under_gunicorn_gevent(host_server):
    import httpx

    from tests.support.client import read_events

    with httpx.Client(base_url=host_server) as client:
        client.post("/login")
        host_cookie = client.cookies["session"]
        posted = client.post("/chat/api/streaming", json={"prompt": "over gevent"})
        events = read_events(client, host_server + posted.json()["stream_url"])
        assert "".join(e.token for e in events) == "OVER GEVENT "
        assert events[-1].event == "end"
        assert client.cookies["session"] == host_cookie
        assert "chatstream_session" in client.cookies
        assert client.get("/whoami").text == "alice"


@pytest.mark.browser
def test_the_chat_page_under_the_prefix_in_chromium(host_server, browser):
    from tests.browser.chat import ChatPage

    page = browser.new_page()
    try:
        failed: list[str] = []
        page.on("response", lambda r: r.status >= 400 and failed.append(r.url))
        page.on("pageerror", lambda exc: failed.append(str(exc)))
        page.goto(host_server + "/chat/")
        page.wait_for_selector("body.is-ready", state="attached")
        chat = ChatPage(page)
        chat.send("hello from chromium")
        chat.wait_done()
        assert chat.last_text() == "HELLO FROM CHROMIUM"
        assert failed == []
    finally:
        page.close()
