"""chatstream as a Flask extension, and the per-app state it keeps in ``app.extensions``.

::

    app = Flask(__name__)
    app.config["CHATSTREAM_ADAPTER"] = "myapp.llm:factory"
    Chatstream(app, url_prefix="/chat/api", page_prefix="/chat")

:meth:`Chatstream.init_app` fills in the defaults of the ``CHATSTREAM_*``
keys of the app's config and checks them (:mod:`chatstream.config`), builds
the store, adapter factory and runner into ``app.extensions["chatstream"]``
(a :class:`State`), and registers one blueprint named ``chatstream`` with
child blueprints (:mod:`chatstream.views`). Its access checks, request ids,
security headers, error handlers and session cookie apply to that blueprint
only: the host app's routes, session and error pages are left alone.

Config keys: every ``CHATSTREAM_*`` setting of :mod:`chatstream.config`; the
app's ``SECRET_KEY`` signs chatstream's own cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config
from . import hosts
from . import logs
from . import shutdown
from .adapters.base import AdapterFactory
from .adapters.base import load_factory
from .adapters.base import reject_options
from .appconfig import Settings
from .appconfig import prepare
from .concurrency import Driver
from .concurrency import get_driver
from .errors import ConfigError
from .errors import register_error_handlers
from .generation import Runner
from .readers import Readers
from .session import CookieSessionInterface
from .store import StreamStore
from .store.memory import MemoryStreamStore

log = logging.getLogger("chatstream")

#: What ``adapter=`` may be besides a spec string: ``factory(settings)``.
AdapterMaker = Callable[[Mapping[str, Any]], AdapterFactory]


@dataclass(eq=False)
class State:
    """What ``app.extensions["chatstream"]`` holds for one app."""

    store: StreamStore
    runner: Runner
    driver: Driver
    adapter_name: str
    #: The app's chatstream settings (a live view of its ``CHATSTREAM_*`` keys).
    settings: Settings
    session_interface: CookieSessionInterface
    #: The open SSE readers: count, heartbeat, draining (:mod:`chatstream.readers`).
    readers: Readers
    #: The ``Host`` names served (``ALLOWED_HOSTS``, :mod:`chatstream.hosts`); None: any.
    trusted_hosts: list[str] | None = None


def state() -> State:
    """The current app's chatstream state."""
    ext: State = current_app.extensions["chatstream"]
    return ext


def settings() -> Settings:
    """The current app's chatstream settings, without the ``CHATSTREAM_`` prefix."""
    return state().settings


def make_store(settings: Mapping[str, Any], driver: Driver) -> StreamStore:
    """The in-memory store, or the Redis one when ``REDIS_URL`` is set.

    :raises ConfigError: ``REDIS_URL`` is set but the ``redis`` package is not
        installed (it is the ``chatstream[redis]`` extra).
    """
    if not settings["REDIS_URL"]:
        return MemoryStreamStore(
            driver,
            ttl_s=settings["STREAM_TTL_S"],
            sweep_s=settings["SWEEP_S"],
            max_bytes=settings["MAX_STORE_MB"] * 2**20,
        )
    try:
        from .store.redis import RedisStreamStore
    except ModuleNotFoundError as exc:
        if exc.name != "redis" and not (exc.name or "").startswith("redis."):
            raise
        raise ConfigError(
            "CHATSTREAM_REDIS_URL is set but the redis package is not installed: "
            "pip install 'chatstream[redis]'"
        ) from None
    return RedisStreamStore.from_config(settings, driver)


class Chatstream:
    """Stream LLM answers from a Flask app; optionally serve the chat page.

    :param app: set up this app at once (else call :meth:`init_app`).
    :param url_prefix: where the stream API lives (``<url_prefix>/streaming``).
    :param page: serve the chat page and its login form.
    :param page_prefix: where the page lives (``<page_prefix>/``,
        ``<page_prefix>/login``, ``<page_prefix>/static/...``).
    :param ops: serve ``/healthz``, ``/readyz`` and ``/metrics`` (at ``ops_prefix``).
    :param adapter: the model adapter: a spec (``demo``, ``openai``,
        ``package.module:factory``; the default of ``CHATSTREAM_ADAPTER``), or
        a callable ``factory(settings)`` returning an adapter factory.
    :param whole_app: chatstream is the whole app (:func:`chatstream.create_app`):
        host names are checked for every route (Flask's ``TRUSTED_HOSTS``),
        not only on chatstream's blueprint.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        url_prefix: str = "/api",
        page: bool = True,
        page_prefix: str = "",
        ops: bool = False,
        ops_prefix: str = "",
        adapter: str | AdapterMaker | None = None,
        whole_app: bool = False,
    ) -> None:
        self.whole_app = whole_app
        self.url_prefix = url_prefix.rstrip("/")
        self.page = page
        self.page_prefix = page_prefix.rstrip("/")
        self.ops = ops
        self.ops_prefix = ops_prefix.rstrip("/")
        self.adapter = adapter
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the app's ``CHATSTREAM_*`` config, build the state, mount the blueprint.

        :raises ConfigError: a setting is invalid (the message names it).
        """
        if "chatstream" in app.extensions:
            raise RuntimeError("chatstream is already set up on this app.")
        if isinstance(self.adapter, str):
            app.config.setdefault(config.config_key("ADAPTER"), self.adapter)
        elif self.adapter is not None:
            app.config.setdefault(config.config_key("ADAPTER"), _name_of(self.adapter))
        values = prepare(app.config)
        logs.configure(values["LOG_FORMAT"])
        if values.get("SECRET_KEY_GENERATED"):
            log.warning(
                "SECRET_KEY is not set: generated one for this process; session cookies "
                "will not survive a restart or work across workers. Set SECRET_KEY."
            )
        driver = get_driver()
        store = make_store(values, driver)
        factory = self._factory(values)
        ext = State(
            store=store,
            runner=Runner(store, factory, driver, values),
            driver=driver,
            adapter_name=factory.name,
            settings=values,
            session_interface=CookieSessionInterface(values["SESSION_COOKIE"]),
            readers=Readers(store, driver, values["HEARTBEAT_S"]),
            trusted_hosts=hosts.resolve(values),
        )
        app.extensions["chatstream"] = ext
        shutdown.register(ext)
        if values["PROXY_FIX"]:
            # Behind a proxy the peer is the proxy: trust exactly the configured
            # number of X-Forwarded-* hops (the ones our own proxies appended).
            # It wraps the whole app: the proxies are in front of all of it.
            app.wsgi_app = ProxyFix(app.wsgi_app, **values["PROXY_FIX"])  # type: ignore[method-assign]
        app.register_blueprint(self._blueprint(app, ext))
        if self.whole_app:  # every route, before any other hook (the blueprint's included)
            hosts.init_hosts(app, ext.trusted_hosts)
        log.info("chatstream ready: %s driver=%s", config.summary(values), driver.name)

    def _factory(self, values: Settings) -> AdapterFactory:
        if self.adapter is None or isinstance(self.adapter, str):
            return load_factory(values["ADAPTER"], values)
        factory = self.adapter(values)
        if not hasattr(factory, "check_options"):
            factory.check_options = reject_options  # type: ignore[method-assign]
        if not getattr(factory, "name", None):
            factory.name = values["ADAPTER"]
        return factory

    def _blueprint(self, app: Flask, ext: State) -> Blueprint:
        """One ``chatstream`` blueprint per app: its children, hooks and handlers."""
        from . import access
        from . import revocations
        from . import session
        from .ratelimit import init_failed_auth
        from .ratelimit import init_limits
        from .views import api
        from .views import auth  # noqa: F401  (routes on ``page``)
        from .views import events  # noqa: F401  (routes on ``api``)
        from .views import ops
        from .views import page
        from .views import pages
        from .views import prompts  # noqa: F401  (routes on ``api``)

        bp = Blueprint("chatstream", __name__)
        if ext.trusted_hosts is not None and not self.whole_app:
            # First: no other hook of the blueprint sees a foreign host.
            bp.before_request(hosts.guard(ext.trusted_hosts))
        bp.register_blueprint(api, url_prefix=self.url_prefix or None)
        if self.page:
            bp.register_blueprint(page, url_prefix=self.page_prefix or None)
        if self.ops:
            bp.register_blueprint(ops.bp, url_prefix=self.ops_prefix or None)
        register_error_handlers(bp)
        logs.init_request_ids(bp)
        bp.before_request(_limit_body)
        init_limits(app, bp)  # app-wide hook, before the guard: refused POSTs count too
        revocations.init_app(app)
        init_failed_auth(app)
        bp.before_request(access.guard)
        bp.after_request(session.save)
        bp.after_request(pages.security_headers)
        return bp


def _limit_body() -> None:
    # UTF-8 and JSON escapes make a body up to ~6 bytes per character.
    request.max_content_length = settings()["MAX_PROMPT_CHARS"] * 6 + 65_536


def _name_of(maker: Any) -> str:
    return f"{getattr(maker, '__module__', '?')}:{getattr(maker, '__qualname__', '?')}"
