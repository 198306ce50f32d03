"""chatstream's own session: a signed cookie apart from the host app's ``session``.

It holds the login mark (:mod:`chatstream.access`) and this browser's latest
stream id (``views/prompts.py``, ``views/events.py``). Mounted in another
Flask app, chatstream never reads or writes that app's session cookie: its
cookie is ``CHATSTREAM_SESSION_COOKIE`` (default ``chatstream_session``),
signed with the app's ``SECRET_KEY`` under a salt of its own, so neither
cookie passes for the other.

:data:`session` is used like :data:`flask.session`; the extension saves it
after each of its blueprint's requests (:func:`save`).

Config keys: ``SESSION_COOKIE``; the app's ``SECRET_KEY``,
``SECRET_KEY_FALLBACKS`` and ``SESSION_COOKIE_DOMAIN/PATH/SECURE/HTTPONLY``.
"""

from __future__ import annotations

from typing import Any
from typing import cast

import orjson
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface
from werkzeug.local import LocalProxy

from .errors import ConfigError


class CachedSerializerSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, its ``itsdangerous`` serializer built once.

    Flask builds a new serializer on every request, cookie or not (to open,
    and again to save): 13 µs of the 16 µs an open costs without a cookie.
    The serializer depends only on the secret keys, so it is built once per
    key set. The standalone app (:func:`chatstream.create_app`) uses this for
    Flask's own ``session`` too, which chatstream leaves to the host's code.
    """

    _serializer: Any = None
    _serializer_keys: Any = None

    def get_signing_serializer(self, app: Flask) -> Any:
        keys = (app.secret_key, app.config.get("SECRET_KEY_FALLBACKS"))
        if self._serializer is None or keys != self._serializer_keys:
            self._serializer = super().get_signing_serializer(app)
            self._serializer_keys = keys
        return self._serializer


class PlainJSON:
    """The session payload as plain JSON, by ``orjson``, keys sorted.

    chatstream's session holds only strings, lists of strings and Flask's
    ``_permanent`` flag, for which Flask's tagged JSON (``flask.json.tag``)
    writes exactly this text, so cookies issued before still load. The tagged
    serializer walks every value in Python: 40 µs to write a session of 16
    stream ids, against under 1 µs.
    """

    @staticmethod
    def dumps(value: Any) -> str:  # str: Flask sets the signed text as the cookie
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


class CookieSessionInterface(CachedSerializerSessionInterface):
    """chatstream's signed cookie session: its own name and salt, plain JSON.

    ``Secure`` whenever the request is HTTPS, ``SameSite=Lax`` unless the app
    says otherwise.

    :param cookie_name: the cookie's name.
    """

    salt = "chatstream-session"
    serializer = PlainJSON()  # type: ignore[assignment]

    def __init__(self, cookie_name: str) -> None:
        self.cookie_name = cookie_name

    def get_cookie_name(self, app: Flask) -> str:
        return self.cookie_name

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return app.config["SESSION_COOKIE_SAMESITE"] or "Lax"


def _interface() -> CookieSessionInterface:
    from .extension import state

    return state().session_interface


def _current() -> SecureCookieSession:
    if "chatstream_session" not in g:
        opened = _interface().open_session(current_app, request)
        if opened is None:
            raise ConfigError("chatstream's session needs the app's SECRET_KEY.")
        g.chatstream_session = opened
    return cast(SecureCookieSession, g.chatstream_session)


#: This request's chatstream session (like :data:`flask.session`).
session = cast(SecureCookieSession, LocalProxy(_current))


def save(response: Response) -> Response:
    """Write the session cookie if this request used the session (an ``after_request``)."""
    opened = g.get("chatstream_session")
    if opened is not None:
        _interface().save_session(current_app, opened, response)
    return response
