"""The login: chatstream's session marked at login, revoked at logout.

The cookie is chatstream's own (:mod:`chatstream.session`). ``POST /login``
with the right ``CHATSTREAM_ACCESS_PASSWORD`` marks the session with an HMAC
of the password (changing the password logs everybody out) and a random
session id. ``POST /logout`` records that id in
:mod:`chatstream.revocations` (Redis when configured) before clearing the
cookie, so a copy of the cookie saved before logout is refused afterwards.

Config keys: ``ACCESS_PASSWORD``, ``SECRET_KEY``, ``PERMANENT_SESSION_LIFETIME``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from flask import current_app

from . import revocations
from .session import session

#: The login mark in the cookie (:func:`password_mark`): this browser logged in.
LOGIN_MARK_KEY = "access"
#: The login's random id in the cookie: what ``POST /logout`` revokes.
SID_KEY = "sid"


def password_mark(config: Mapping[str, Any]) -> str:
    """What the session holds once logged in: an HMAC of the current password."""
    key = str(config["SECRET_KEY"]).encode()
    message = b"chatstream-access\0" + str(config["ACCESS_PASSWORD"]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def check_password(config: Mapping[str, Any], candidate: str) -> bool:
    """Constant-time comparison with ``ACCESS_PASSWORD`` (digests: no length leak)."""
    expected = config.get("ACCESS_PASSWORD")
    if not expected:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(candidate.encode("utf-8", "surrogatepass")).digest(),
        digest(str(expected).encode()).digest(),
    )


def log_in(config: Mapping[str, Any]) -> None:
    """Start a fresh logged-in session (a new cookie and id, nothing carried over)."""
    session.clear()
    session[LOGIN_MARK_KEY] = password_mark(config)
    session[SID_KEY] = secrets.token_urlsafe(18)
    session.permanent = True


def log_out() -> None:
    """Revoke this login's id (so saved copies of the cookie stop working), then forget it.

    :raises StoreUnavailable: the revocation could not be stored (the cookie stays).
    """
    sid = session.get(SID_KEY)
    if isinstance(sid, str):
        lifetime = current_app.permanent_session_lifetime.total_seconds()
        revocations.current().revoke(sid, int(lifetime) + 1)
    session.clear()


def has_session(config: Mapping[str, Any]) -> bool:
    """A session logged in with the current password, and not logged out since.

    A cookie without a session id (signed before ids existed) does not count:
    it could never be revoked.

    :raises StoreUnavailable: the revocation list cannot be read (fail closed).
    """
    if not config.get("ACCESS_PASSWORD"):
        return False
    mark = session.get(LOGIN_MARK_KEY)
    sid = session.get(SID_KEY)
    if not isinstance(mark, str) or not isinstance(sid, str):
        return False
    if not hmac.compare_digest(mark, password_mark(config)):
        return False
    return not revocations.current().is_revoked(sid)
