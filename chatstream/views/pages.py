"""The chat page, and the security headers every response carries."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import render_template

from ..extension import settings
from ..extension import state
from . import page

bp = page

#: Strict CSP: no inline script or style; model output can never run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
    "object-src 'none'"
)


@bp.get("/")
def index() -> str:
    config = settings()
    return render_template(
        "chatstream/index.html",
        models=config["MODELS"],
        default_model=config["MODEL"],
        adapter=state().adapter_name,
    )


@bp.context_processor
def page_context() -> dict[str, Any]:
    return {"login_enabled": bool(settings().get("ACCESS_PASSWORD"))}


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    return response
