"""chatstream: stream LLM answers to the browser token by token over SSE.

::

    POST /api/streaming ──> views.prompts ──> generation.Runner ──> adapters.*
                                                    │ framed events
                                                    v
    GET /api/streaming/<id> <── views.events <── streams (memory | Redis)

:func:`create_app` is the standalone app; :class:`Chatstream` mounts the same
thing in an existing Flask app.
"""

from __future__ import annotations

__version__ = "0.1.0"

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from flask import Flask

    from .extension import Chatstream

__all__ = ["Chatstream", "create_app", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing chatstream.gunicorn_conf in gunicorn's master
    # imports neither Flask nor ssl before the gevent worker monkey-patches.
    if name == "Chatstream":
        from .extension import Chatstream

        return Chatstream
    raise AttributeError(f"module 'chatstream' has no attribute {name!r}")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the standalone app: defaults, then the environment, then ``test_config``.

    The app serves the page at ``/``, the API under ``/api`` and ``/healthz``,
    ``/readyz``, ``/metrics``; every error, its own or Flask's, is JSON.

    :param test_config: config keys over the environment's; chatstream's
        settings may be named without their ``CHATSTREAM_`` prefix (``ADAPTER``).
    :raises ConfigError: a setting is invalid (the message names it).
    """
    from flask import Flask

    from . import config
    from .errors import register_error_handlers
    from .extension import Chatstream
    from .session import CachedSerializerSessionInterface
    from .submission import StrictJSONProvider

    app = Flask(__name__, static_folder=None)
    # Flask opens its own session on every request: build its serializer once.
    app.session_interface = CachedSerializerSessionInterface()
    config.load_environment(app.config)
    if test_config:
        app.config.from_mapping(config.namespaced(test_config))
    # Every JSON body the app reads is strict (depth, lone surrogates: see submission.py).
    app.json = StrictJSONProvider(app)
    app.json.ensure_ascii = False
    # The whole app is chatstream: 404/405 outside its routes are JSON too.
    register_error_handlers(app)
    # ... and so is every host name it answers to (checked app-wide, once).
    Chatstream(app, url_prefix="/api", page=True, ops=True, whole_app=True)
    return app
