"""Peer (c): a naive Flask generator view, served by gunicorn's gevent worker.

Run: ``gunicorn -k gevent -w 1 bench.peers.flask_naive:app``.

``POST /api/streaming`` with ``Accept: text/event-stream`` streams in the reply
(single-request form); without it, the options are parked under a new id and
``GET /api/streaming/<id>`` runs the model while it streams (the model starts
when the reader arrives).  One ``yield`` per event, ``json.dumps`` per token,
``time.sleep`` (monkey-patched by the gevent worker) between tokens.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from flask import Flask
from flask import Response
from flask import abort
from flask import jsonify
from flask import request

app = Flask(__name__)
_pending: dict[str, tuple[int, int]] = {}


def _options() -> tuple[int, int]:
    opts = (request.get_json(silent=True) or {}).get("options") or {}
    return int(opts.get("tokens", 10)), int(opts.get("delay_ms", 0))


def _events(tokens: int, delay_ms: int) -> Iterator[str]:
    yield "retry: 3000\n\n"
    for i in range(tokens):
        if i and delay_ms:
            time.sleep(delay_ms / 1000)
        yield f"id: {i}\nevent: newToken\ndata: {json.dumps({'token': f'{i} '})}\n\n"
    end = json.dumps({"finish_reason": "stop", "tokens": tokens})
    yield f"id: {tokens}\nevent: end\ndata: {end}\n\n"


def _stream(tokens: int, delay_ms: int) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(_events(tokens, delay_ms), mimetype="text/event-stream", headers=headers)


@app.post("/api/streaming")
def create() -> Response | tuple[Response, int]:
    """Start a chat: stream now (single request) or hand back a stream URL."""
    tokens, delay_ms = _options()
    if "text/event-stream" in request.headers.get("Accept", ""):
        return _stream(tokens, delay_ms)
    sid = uuid.uuid4().hex
    _pending[sid] = (tokens, delay_ms)
    return jsonify(id=sid, stream_url=f"/api/streaming/{sid}"), 202


@app.get("/api/streaming/<sid>")
def events(sid: str) -> Response:
    """Stream a parked chat."""
    opts = _pending.pop(sid, None)
    if opts is None:
        abort(404)
    return _stream(*opts)
