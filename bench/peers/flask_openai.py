"""Upstream peer: a naive Flask generator view with ``openai.OpenAI``, on gunicorn gevent.

Run: ``OPENAI_BASE_URL=... gunicorn -k gevent -w 1 bench.peers.flask_openai:app``.

The same HTTP contract as :mod:`bench.peers.flask_naive`, the model being an
OpenAI-compatible upstream read as the SDK's README shows: one module-level
``OpenAI()`` client (SDK defaults), ``create(stream=True)`` and a ``for`` loop
over the parsed chunks, one ``yield`` per event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from flask import Flask
from flask import Response
from flask import abort
from flask import jsonify
from flask import request
from openai import OpenAI

app = Flask(__name__)
client = OpenAI()
_pending: dict[str, tuple[str, str]] = {}


def _events(model: str, prompt: str) -> Iterator[str]:
    yield "retry: 3000\n\n"
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    i, reason = 0, "stop"
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    token = json.dumps({"token": choice.delta.content})
                    yield f"id: {i}\nevent: newToken\ndata: {token}\n\n"
                    i += 1
                if choice.finish_reason:
                    reason = choice.finish_reason
    yield f"id: {i}\nevent: end\ndata: {json.dumps({'finish_reason': reason})}\n\n"


def _stream(model: str, prompt: str) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(_events(model, prompt), mimetype="text/event-stream", headers=headers)


def _body() -> tuple[str, str]:
    body = request.get_json(silent=True) or {}
    return str(body.get("model", "t10-d0")), str(body.get("prompt", ""))


@app.post("/api/streaming")
def create() -> Response | tuple[Response, int]:
    """Start a chat: stream now (single request) or hand back a stream URL."""
    model, prompt = _body()
    if "text/event-stream" in request.headers.get("Accept", ""):
        return _stream(model, prompt)
    sid = uuid.uuid4().hex
    _pending[sid] = (model, prompt)
    return jsonify(id=sid, stream_url=f"/api/streaming/{sid}"), 202


@app.get("/api/streaming/<sid>")
def events(sid: str) -> Response:
    """Stream a parked chat."""
    parked = _pending.pop(sid, None)
    if parked is None:
        abort(404)
    return _stream(*parked)
