"""Rate limiting of ``POST`` per client address, with Flask-Limiter.

Every ``POST`` (a prompt, a login attempt) counts against one shared budget
per client address: ``CHATSTREAM_RATE_LIMIT`` (default ``60/minute``, a
moving window; ``off`` disables it). Reads (``GET`` of a stream, the page,
``/healthz``) and ``DELETE`` are not counted: a reconnecting EventSource must
never be refused for being eager. Over the limit the client gets the usual
JSON error, ``429 rate_limited``, with ``Retry-After`` in seconds.

The counters live in Redis when ``CHATSTREAM_REDIS_URL`` is set, so the
limit holds across workers and machines; otherwise in this process's memory
(per worker). If the Redis counters are unreachable the limiter lets requests
through and logs: the stream store fails those requests with a clear ``503``
anyway, and a limiter outage must not take the service down on its own.

The client address is ``request.remote_addr``: behind a proxy, configure
``CHATSTREAM_PROXY_FIX`` so that it is the address the proxy saw, not the
proxy's own (and so that a client cannot pick its own key with a forged
``X-Forwarded-For``).

Config keys: ``RATE_LIMIT``, ``REDIS_URL``.
"""

from __future__ import annotations

import math
import time

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import request
from flask_limiter import Limiter
from flask_limiter import RateLimitExceeded

from .appconfig import Settings
from .errors import TooManyRequests
from .errors import error_response

#: Retry-After when the limiter's window cannot be read (storage hiccup).
FALLBACK_RETRY_S = 60


def client_key() -> str:
    """The client's address: the rate-limit key and the per-client stream cap key."""
    return request.remote_addr or "unknown"


def _storage_uri(redis_url: str | None) -> str:
    if not redis_url:
        return "memory://"
    # redis-py spells a socket ``unix://``; the ``limits`` package ``redis+unix://``.
    if redis_url.startswith("unix://"):
        return "redis+" + redis_url
    return redis_url


def _not_post() -> bool:
    # Mounted in a host app, the limiter sees every request: only chatstream's count.
    return request.method != "POST" or "chatstream" not in request.blueprints


def init_limits(app: Flask, blueprint: Blueprint) -> Limiter | None:
    """Rate-limit ``POST`` per client address as ``RATE_LIMIT`` says.

    :param blueprint: chatstream's blueprint: only its requests count, and
        only it answers them with the JSON ``429``.
    :returns: the limiter, or None when ``RATE_LIMIT`` is ``off``.
    """
    settings = Settings(app.config)
    rate: str = settings["RATE_LIMIT"]
    if rate == "off":
        return None
    limiter = Limiter(
        client_key,
        application_limits=[rate],
        application_limits_exempt_when=_not_post,
        storage_uri=_storage_uri(settings["REDIS_URL"]),
        strategy="moving-window",
        key_prefix="chatstream",
        headers_enabled=False,
        swallow_errors=True,
    )
    limiter.init_app(app)

    @blueprint.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        error = TooManyRequests(
            f"Too many requests from your address (limit: {exc.description}); "
            "wait before sending another.",
            retry_after=_retry_after(limiter),
        )
        return error_response(error.status, error.code, error.message, error.headers)

    return limiter


def _retry_after(limiter: Limiter) -> int:
    """Seconds until the breached window lets one more request through."""
    try:
        current = limiter.current_limit
        if current is None:
            return FALLBACK_RETRY_S
        return max(1, math.ceil(current.reset_at - time.time()))
    except Exception:  # the counters' store failed between hit and answer
        return FALLBACK_RETRY_S
