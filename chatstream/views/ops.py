"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from .. import metrics
from ..errors import error_response
from ..extension import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive; with this worker's open streams and readers.

    ``?verbose=1`` adds the request as the app sees it: ``client`` (the
    address rate limits and logs use) and ``scheme``. Behind a proxy they are
    the proxy's unless ``CHATSTREAM_PROXY_FIX`` trusts its X-Forwarded-* hop.
    """
    ext = state()
    body = {"status": "ok", "running": len(ext.runner.running), "readers": ext.readers.count}
    if request.args.get("verbose") == "1":
        body.update(client=request.remote_addr, scheme=request.scheme)
    return jsonify(body)


@bp.get("/readyz")
def readyz() -> Response:
    """The stream store accepts writes: this instance can take new streams.

    With Redis this is a write, not a PING: a Redis at ``maxmemory`` answers
    PING and refuses every write (``OOM command not allowed``).
    """
    if not state().store.ping():
        return error_response(
            503, "store_unavailable", "The stream store is unreachable or refuses writes."
        )
    return jsonify(status="ready")


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus exposition (aggregated over gunicorn workers)."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
