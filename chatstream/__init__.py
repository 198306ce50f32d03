"""chatstream: stream LLM answers to the browser token by token over SSE.

::

    POST /api/streaming ──> views.prompts ──> generation.Runner ──> adapters.*
                                                    │ framed events
                                                    v
    GET /api/streaming/<id> <── views.events <── streams (memory | Redis)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as settings
from . import logs
from . import shutdown
from .access import init_access
from .adapters.base import load_factory
from .concurrency import get_driver
from .errors import register_error_handlers
from .extension import Chatstream
from .generation import Runner
from .heartbeat import Ticker
from .hosts import init_hosts
from .limits import init_limits
from .memory_store import MemoryStreamStore
from .requests import StrictJSONProvider
from .streams import StreamStore

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("chatstream")


def _make_store(config: Mapping[str, Any]) -> StreamStore:
    if config["REDIS_URL"]:
        from .redis_streams import RedisStreamStore

        return RedisStreamStore.from_config(config, get_driver())
    return MemoryStreamStore(
        get_driver(),
        ttl_s=config["STREAM_TTL_S"],
        sweep_s=config["SWEEP_S"],
        max_bytes=config["MAX_STORE_MB"] * 2**20,
    )


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``test_config``.

    :raises ConfigError: a setting is invalid (the message names it).
    """
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(settings.defaults())
    app.config.from_prefixed_env(settings.PREFIX)
    settings.load_environment(app.config)
    if test_config:
        app.config.from_mapping(test_config)
    settings.validate(app.config)
    if app.config["PROXY_FIX"]:
        # Behind a proxy the peer is the proxy: trust exactly the configured
        # number of X-Forwarded-* hops (the ones our own proxies appended).
        app.wsgi_app = ProxyFix(app.wsgi_app, **app.config["PROXY_FIX"])  # type: ignore[method-assign]
    # UTF-8 and JSON escapes make a body up to ~6 bytes per character.
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_PROMPT_CHARS"] * 6 + 65_536
    # Flask's defaults hold the key (None), so setdefault() would not set it.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config["SESSION_COOKIE_SAMESITE"] or "Lax"
    app.json = StrictJSONProvider(app)
    app.json.ensure_ascii = False

    logs.configure(app.config["LOG_FORMAT"])
    if app.config.get("SECRET_KEY_GENERATED"):
        log.warning(
            "SECRET_KEY is not set: generated one for this process; session cookies "
            "will not survive a restart or work across workers. Set SECRET_KEY."
        )
    driver = get_driver()
    store = _make_store(app.config)
    factory = load_factory(app.config["ADAPTER"], app.config)
    runner = Runner(store, factory, driver, app.config)
    app.extensions["chatstream"] = Chatstream(
        store=store,
        runner=runner,
        driver=driver,
        adapter_name=factory.name,
        config=dict(app.config),
    )
    ext = app.extensions["chatstream"]
    ext.ticker = Ticker(ext, app.config["HEARTBEAT_S"])
    shutdown.register(ext)
    log.info("chatstream ready: %s driver=%s", settings.summary(app.config), driver.name)

    register_error_handlers(app)
    init_hosts(app, app.config)
    logs.init_request_ids(app)
    init_limits(app)  # before the access guard: refused POSTs (password guesses) count too
    init_access(app)
    from .views import auth
    from .views import events
    from .views import ops
    from .views import pages
    from .views import prompts

    app.register_blueprint(prompts.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(auth.bp)
    return app
