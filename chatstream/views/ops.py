"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import jsonify

from ..errors import error_response
from ..extension import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive; with this worker's open streams and readers."""
    ext = state()
    return jsonify(status="ok", running=len(ext.runner.running), readers=ext.readers)


@bp.get("/readyz")
def readyz() -> Response:
    """The stream store is reachable: this instance can take traffic."""
    if not state().store.ping():
        return error_response(503, "store_unavailable", "The stream store is unreachable.")
    return jsonify(status="ready")
