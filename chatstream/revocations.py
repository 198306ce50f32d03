"""Revoked login sessions: after ``POST /logout`` a saved copy of the cookie is refused.

The login cookie is signed, not stored: on its own, a copy saved before
logout (a stolen cookie, a second tab's jar) keeps working until it expires,
``PERMANENT_SESSION_LIFETIME`` (31 days) after it was last refreshed. So each
login carries a random session id, and logout records that id here for the
longest any copy of the cookie can still be valid: the lifetime, counted
from the logout (every copy was signed before it). Every request that rides
on the cookie asks whether its id was revoked.

* In memory when there is no Redis: the memory store runs one worker anyway.
* In Redis with ``CHATSTREAM_REDIS_URL`` (``chatstream:revoked:<sid>``, one
  key with its own expiry), so every worker and instance refuses the id.
  If Redis cannot answer, the request is refused with ``503
  store_unavailable``: a revoked cookie never passes because Redis is down.

Config keys: ``REDIS_URL``, ``PERMANENT_SESSION_LIFETIME`` (Flask's).
"""

from __future__ import annotations

import time
from typing import Protocol

from flask import Flask
from flask import current_app

from .config import config_key
from .errors import StoreUnavailable

KEY_PREFIX = "chatstream:revoked:"
#: ``app.extensions`` key of the app's revocation list.
EXTENSION = "chatstream.revocations"


class Revocations(Protocol):
    """Where revoked session ids are kept until no copy of the cookie can be valid."""

    def revoke(self, sid: str, ttl_s: int) -> None: ...

    def is_revoked(self, sid: str) -> bool: ...


class MemoryRevocations:
    """Revoked ids in this process, each dropped once its cookie has expired."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def revoke(self, sid: str, ttl_s: int) -> None:
        now = time.monotonic()
        # Prune on write: logouts are POSTs (rate-limited), so this stays small.
        self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[sid] = now + ttl_s

    def is_revoked(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and until > time.monotonic()


class RedisRevocations:
    """Revoked ids in Redis, shared by every worker and instance.

    :param url: ``CHATSTREAM_REDIS_URL``.
    """

    def __init__(self, url: str) -> None:
        import redis  # the chatstream[redis] extra: imported only when configured

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._errors: type[Exception] = redis.RedisError

    def revoke(self, sid: str, ttl_s: int) -> None:
        """:raises StoreUnavailable: Redis did not take the write."""
        try:
            self._redis.set(KEY_PREFIX + sid, b"1", ex=max(1, ttl_s))
        except self._errors as exc:
            raise StoreUnavailable(f"Cannot log out right now ({type(exc).__name__}).") from exc

    def is_revoked(self, sid: str) -> bool:
        """:raises StoreUnavailable: Redis did not answer (fail closed)."""
        try:
            return bool(self._redis.exists(KEY_PREFIX + sid))
        except self._errors as exc:
            raise StoreUnavailable(
                f"Cannot check the login right now ({type(exc).__name__})."
            ) from exc


def from_config(redis_url: str | None) -> Revocations:
    return RedisRevocations(redis_url) if redis_url else MemoryRevocations()


def init_app(app: Flask) -> None:
    """Keep the app's revocation list (Redis with ``REDIS_URL``, else memory)."""
    app.extensions[EXTENSION] = from_config(app.config[config_key("REDIS_URL")])


def current() -> Revocations:
    """The current app's revocation list."""
    revoked: Revocations = current_app.extensions[EXTENSION]
    return revoked
