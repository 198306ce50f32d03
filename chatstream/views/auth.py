"""The login form for ``CHATSTREAM_ACCESS_PASSWORD`` (see :mod:`chatstream.access`).

``GET /login`` shows the form; ``POST /login`` takes the form field or JSON
``{"password"}`` and marks the signed session cookie; ``POST /logout`` clears
it. Without an access password these URLs do not exist (404).
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

from .. import access
from ..errors import Unauthorized
from ..extension import settings
from ..session import session
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
    if access.has_access(settings()):
        return redirect(target, 303)
    return render_template("chatstream/login.html", next=target, error=None)


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Check the password; on success mark the session and go on."""
    _require_password()
    config = settings()
    payload = request.get_json(silent=True) if request.is_json else None
    data = payload if isinstance(payload, dict) else request.form
    password = data.get("password")
    target = _safe_next(data.get("next"))
    if not isinstance(password, str) or not access.check_password(config, password):
        log.warning("failed login from %s", request.remote_addr)
        if request.is_json:
            raise Unauthorized("Wrong access password.", code="wrong_password")
        return render_template("chatstream/login.html", next=target, error="Wrong password."), 401
    access.log_in(config)
    if request.is_json:
        return jsonify(status="ok")
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Forget the login (and this browser's latest stream)."""
    _require_password()
    session.clear()
    if request.is_json:
        return jsonify(status="ok")
    return redirect(url_for(".login_form"), 303)
