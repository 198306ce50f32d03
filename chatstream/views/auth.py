"""The login form for ``CHATSTREAM_ACCESS_PASSWORD`` (see :mod:`chatstream.access`,
:mod:`chatstream.login`).

``GET /login`` shows the form; ``POST /login`` takes the form field or JSON
``{"password"}`` and marks the signed session cookie; ``POST /logout``
revokes the login (see :mod:`chatstream.revocations`) and clears the cookie.
Wrong passwords count against the address's failure budget, shared with wrong
bearer tokens (:class:`chatstream.ratelimit.FailedAuth`). Without an access
password these URLs do not exist (404).
"""

from __future__ import annotations

import logging

from flask import abort
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from .. import login as login_mark
from .. import ratelimit
from ..errors import TooManyRequests
from ..errors import Unauthorized
from ..extension import settings
from ..submission import strict_json
from . import page

bp = page
log = logging.getLogger(__name__)


def _require_password() -> None:
    if not settings().get("ACCESS_PASSWORD"):
        abort(404)


def _safe_next(target: object) -> str:
    """A local path to return to after login; never another site.

    Refuses ``//host``, ``/\\host`` and control characters, which browsers
    would read as a link to another host.
    """
    if (
        not isinstance(target, str)
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return url_for(".index")
    return target


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    """The password form (or straight on, when already logged in)."""
    _require_password()
    target = _safe_next(request.args.get("next"))
    # The session only: a bearer token here would be a guess the limiter never sees.
    if login_mark.has_session(settings()):
        return redirect(target, 303)
    return render_template("chatstream/login.html", next=target, error=None)


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Check the password; on success mark the session and go on."""
    _require_password()
    config = settings()
    payload = strict_json(request) if request.is_json else None
    data = payload if isinstance(payload, dict) else request.form
    password = data.get("password")
    target = _safe_next(data.get("next"))
    try:
        ratelimit.check_credential_budget()
    except TooManyRequests as exc:
        if request.is_json:
            raise
        return (
            render_template("chatstream/login.html", next=target, error=exc.message),
            429,
            exc.headers,
        )
    if not isinstance(password, str) or not login_mark.check_password(config, password):
        ratelimit.record_failure("login")
        if request.is_json:
            raise Unauthorized("Wrong access password.", code="wrong_password")
        return render_template("chatstream/login.html", next=target, error="Wrong password."), 401
    login_mark.log_in(config)
    if request.is_json:
        return jsonify(status="ok")
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Revoke the login, then forget it (and this browser's latest stream)."""
    _require_password()
    login_mark.log_out()
    if request.is_json:
        return jsonify(status="ok")
    return redirect(url_for(".login_form"), 303)
