"""The chat page, and the security headers every response carries."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import render_template

from ..extension import state

bp = Blueprint("pages", __name__)

#: Strict CSP: no inline script or style; model output can never run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
    "object-src 'none'"
)


@bp.get("/")
def index() -> str:
    config = current_app.config
    return render_template(
        "index.html",
        models=config["MODELS"],
        default_model=config["MODEL"],
        adapter=state().adapter_name,
    )


@bp.after_app_request
def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    return response
