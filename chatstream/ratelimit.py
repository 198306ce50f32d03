"""Rate limiting per client address: ``POST`` with Flask-Limiter, failed
credentials with its engine, the ``limits`` package.

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

Failed credentials have their own, smaller budget: every wrong bearer token
(on any method, ``GET`` of a stream included) and every wrong ``POST /login``
password counts against ``CHATSTREAM_AUTH_FAILURE_LIMIT`` per client address
(default ``10/minute;100/day``). Over it, *every* credential from that address
is refused with ``429 too_many_failures`` before it is compared, so the
answer tells a guesser nothing, for as long as ``Retry-After`` says. Requests
without credentials, and right ones below the limit, never count. The
counters share the POST limit's storage (Redis when configured); if Redis
fails, this worker counts in memory instead of letting guesses through.

Config keys: ``RATE_LIMIT``, ``AUTH_FAILURE_LIMIT``, ``REDIS_URL``.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import request
from flask_limiter import Limiter
from flask_limiter import RateLimitExceeded
from limits import RateLimitItem
from limits import parse_many
from limits.storage import MemoryStorage
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from .appconfig import Settings
from .errors import TooManyRequests
from .errors import error_response

log = logging.getLogger(__name__)

#: ``app.extensions`` key of the app's :class:`FailedAuth` (None when off).
EXTENSION = "chatstream.failed_auth"

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


class FailedAuth:
    """One budget of failed credentials per client address (see the module docs).

    Flask-Limiter's decorators count requests to a view; this counts only
    failures, and the access guard must ask before it compares a token. So it
    drives Flask-Limiter's own engine, ``limits``, directly: ``check()`` before
    comparing, ``record()`` after a failure.

    :param rate: e.g. ``10/minute;100/day`` (Flask-Limiter notation).
    :param redis_url: share the counters through Redis; else this process's memory.
    """

    #: Namespaces the counters in a storage shared with other limits.
    SCOPE = "chatstream-auth-failures"

    def __init__(self, rate: str, redis_url: str | None) -> None:
        self._items: list[RateLimitItem] = parse_many(rate)
        self._limiter = MovingWindowRateLimiter(storage_from_string(_storage_uri(redis_url)))
        self._local = MovingWindowRateLimiter(MemoryStorage()) if redis_url else self._limiter
        self._warned_at = -math.inf

    def _call(self, method: str, item: RateLimitItem, key: str) -> bool:
        """Ask the shared counters; on a storage failure, this worker's own."""
        try:
            return bool(getattr(self._limiter, method)(item, self.SCOPE, key))
        except Exception:  # Redis down or refusing writes: never a free pass
            if time.monotonic() - self._warned_at > 60:  # once a minute, not per request
                self._warned_at = time.monotonic()
                log.warning("auth failure counters unavailable; counting in this worker")
            return bool(getattr(self._local, method)(item, self.SCOPE, key))

    def check(self, key: str) -> None:
        """Refuse ``key`` while it is over any of its windows.

        :raises TooManyRequests: ``too_many_failures`` with ``Retry-After``.
        """
        for item in self._items:
            if not self._call("test", item, key):
                raise TooManyRequests(
                    "Too many failed logins or tokens from your address; wait before trying again.",
                    code="too_many_failures",
                    retry_after=self._retry_after(item, key),
                )

    def record(self, key: str) -> None:
        """Count one failed credential for ``key``."""
        for item in self._items:
            self._call("hit", item, key)

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        try:
            reset_at = self._limiter.get_window_stats(item, self.SCOPE, key).reset_time
        except Exception:
            return FALLBACK_RETRY_S
        return max(1, math.ceil(reset_at - time.time()))


def init_failed_auth(app: Flask) -> None:
    """Keep the failed-credential limiter ``AUTH_FAILURE_LIMIT`` asks for (None: ``off``)."""
    settings = Settings(app.config)
    rate: str = settings["AUTH_FAILURE_LIMIT"]
    failures = None if rate == "off" else FailedAuth(rate, settings["REDIS_URL"])
    app.extensions[EXTENSION] = failures


def check_credential_budget() -> None:
    """Refuse any credential from an address over its failure budget, before comparing it.

    :raises TooManyRequests: ``too_many_failures`` with ``Retry-After``.
    """
    failures: FailedAuth | None = current_app.extensions[EXTENSION]
    if failures is not None:
        failures.check(client_key())


def record_failure(kind: str) -> None:
    """Count a wrong password or bearer token against the client's address."""
    log.warning("failed %s from %s", kind, client_key())
    failures: FailedAuth | None = current_app.extensions[EXTENSION]
    if failures is not None:
        failures.record(client_key())
