"""Access control: who may use the page and the API, and from which origin.

Off by default (local use). A public deployment sets one or both of:

* ``CHATSTREAM_ACCESS_PASSWORD``: a shared password. ``/login`` checks it and
  marks the signed session cookie (HttpOnly, SameSite=Lax, Secure when the
  request came over HTTPS, which behind a proxy needs ``CHATSTREAM_PROXY_FIX``
  so that ``request.is_secure`` is true). The mark is an HMAC of the password:
  changing the password logs everybody out.
* ``CHATSTREAM_API_TOKENS``: bearer tokens for programmatic clients
  (``Authorization: Bearer <token>``).

The login mark itself (marking, checking, revoking at logout, so that a copy
saved before ``POST /logout`` no longer works) is :mod:`chatstream.login`.
Wrong bearer tokens and wrong passwords share one budget per client address
(``CHATSTREAM_AUTH_FAILURE_LIMIT``, :class:`chatstream.ratelimit.FailedAuth`);
over it, credentials from that address get ``429 too_many_failures``
without being compared.

Then every request to chatstream's blueprint needs one of them, except
``/healthz``, ``/readyz``, ``/metrics``, ``/static/*`` and ``/login``: the API
answers a JSON ``401``; a browser opening the page is sent to the login form.
A host app's own routes are never checked (:func:`guard` is a hook of the
blueprint only). Stream ids stay
capabilities *within* an authenticated deployment: the ``GET`` of a stream
needs access too (``EventSource`` sends the cookie on same-origin requests).

Always on, whether access control is or not: no cross-site writes.

* ``POST``, ``DELETE`` (any method but ``GET``/``HEAD``/``OPTIONS``) with an
  ``Origin`` header must come from this very origin (scheme, host, port as the
  request reached the app, so after ``ProxyFix``); ``Origin: null`` is
  refused. The answer is a JSON ``403 cross_origin``.
* A request *without* ``Origin`` is allowed: curl, SDKs and server-side
  clients send none, and they carry no victim's cookie, so they are no CSRF
  vector. Browsers send ``Origin`` on every cross-origin ``POST``/``DELETE``
  (Fetch standard, "append a request Origin header"), so a forged cross-site
  request always carries one. ``Sec-Fetch-Site: cross-site`` without
  ``Origin`` is refused as well, as a second line.
* Bodies are JSON only: ``POST /api/streaming`` already answers ``415`` to
  anything else (so an HTML form, which cannot send JSON, never starts a
  generation, and a cross-origin ``fetch()`` of JSON needs a CORS preflight
  this app never grants); a ``DELETE`` with a body must send JSON too.

Config keys: ``ACCESS_PASSWORD``, ``API_TOKENS``, ``SECRET_KEY``,
``AUTH_FAILURE_LIMIT``, ``REDIS_URL``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import redirect
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from . import login
from . import ratelimit
from .errors import Forbidden
from .errors import Unauthorized
from .errors import UnsupportedMediaType
from .extension import settings

log = logging.getLogger(__name__)

#: Endpoints that never need access (probes, metrics scrapers, login, static files).
OPEN_ENDPOINTS = frozenset(
    f"chatstream.{name}"
    for name in (
        "ops.healthz",
        "ops.readyz",
        "ops.prometheus_metrics",
        "page.login_form",
        "page.login",
        "page.logout",
        "page.static",
    )
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def enabled(config: Mapping[str, Any]) -> bool:
    return bool(config.get("ACCESS_PASSWORD") or config.get("API_TOKENS"))


def guard() -> Response | None:
    """Refuse cross-site writes, then (when on) requests without access.

    :raises Forbidden: an ``Origin`` other than this app's.
    :raises UnsupportedMediaType: a ``DELETE`` with a non-JSON body.
    :raises Unauthorized: access control is on and the request has no access.
    :raises TooManyRequests: a bearer token from an address over its failure budget.
    """
    if request.method not in SAFE_METHODS:
        _check_origin()
        if request.method == "DELETE" and _has_body() and not request.is_json:
            raise UnsupportedMediaType("A DELETE body, if any, must be JSON.")
    config = settings()
    if not enabled(config) or _is_open():
        return None
    token = _bearer_token()
    if token is not None:
        # A request that sends a bearer token is judged by it alone (other
        # ``Authorization`` schemes, e.g. a proxy's Basic auth, are not ours).
        ratelimit.check_credential_budget()
        if _valid_token(config, token):
            return None
        ratelimit.record_failure("bearer token")
    elif login.has_session(config):
        return None
    if _wants_page():
        here = request.script_root + request.full_path.rstrip("?")
        return redirect(url_for("chatstream.page.login", next=here))
    if config.get("API_TOKENS"):
        challenge = 'Bearer realm="chatstream"'
        if _bearer_token() is not None:
            challenge += ', error="invalid_token"'
    else:
        challenge = None
    raise Unauthorized(_refusal(config), challenge=challenge)


# -- origin -------------------------------------------------------------------


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def same_origin(origin: str) -> bool:
    """Whether an ``Origin`` header names the origin this request reached."""
    scheme, sep, netloc = origin.strip().partition("://")
    if not sep or "/" in netloc or "@" in netloc:
        return False  # includes the opaque origin "null"
    theirs = _origin_tuple(scheme.lower(), netloc)
    ours = _origin_tuple(request.scheme, request.host)
    return theirs is not None and theirs == ours


def _check_origin() -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise Forbidden("Cross-site requests are not accepted.")
        return
    if not same_origin(origin):
        log.warning("refused %s %s from origin %r", request.method, request.path, origin[:100])
        raise Forbidden("Cross-origin requests are not accepted.")


def _has_body() -> bool:
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )


# -- access -------------------------------------------------------------------


def _is_open() -> bool:
    return request.endpoint in OPEN_ENDPOINTS


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _valid_token(config: Mapping[str, Any], token: str) -> bool:
    # Compare with every token, so the time taken does not tell which matched.
    found = False
    for candidate in config.get("API_TOKENS") or ():
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def _wants_page() -> bool:
    if request.method not in ("GET", "HEAD") or request.blueprint != "chatstream.page":
        return False
    if not settings().get("ACCESS_PASSWORD"):
        return False  # no login form to send the browser to
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _refusal(config: Mapping[str, Any]) -> str:
    ways = []
    if config.get("ACCESS_PASSWORD"):
        ways.append("log in at /login")
    if config.get("API_TOKENS"):
        ways.append("send 'Authorization: Bearer <token>'")
    return f"This chatstream needs access: {' or '.join(ways)}."
