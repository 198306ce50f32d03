"""Prompt submission: start a generation, answer with its stream id.

``POST /api/streaming`` answers ``202`` with ``{"id", "stream_url"}`` and a
``Location`` header, and remembers the id in the signed session cookie for
the seed's id-less ``EventSource('/api/streaming')``. With
``Accept: text/event-stream`` it streams the answer in the same response.
``DELETE /api/streaming/<id>`` cancels.
"""

from __future__ import annotations

from flask import Response
from flask import jsonify
from flask import request
from flask import url_for

from ..extension import settings
from ..extension import state
from ..limits import client_key
from ..requests import parse_submission
from ..requests import read_json
from ..session import session
from . import api
from .events import event_stream

bp = api

SESSION_KEY = "stream"


def _wants_event_stream() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    return best == "text/event-stream"


@bp.post("/streaming")
def submit() -> Response:
    """Start generating an answer to the submitted conversation."""
    config = settings()
    submission = parse_submission(
        read_json(request),
        max_chars=config["MAX_PROMPT_CHARS"],
        max_messages=config["MAX_MESSAGES"],
    )
    stream_id = state().runner.start(
        submission.messages, submission.model, submission.options, client=client_key()
    )
    session[SESSION_KEY] = stream_id
    if _wants_event_stream():
        return event_stream(stream_id, after=0)
    stream_url = url_for(".stream", stream_id=stream_id)
    response = jsonify(id=stream_id, stream_url=stream_url)
    response.status_code = 202
    response.headers["Location"] = stream_url
    return response


@bp.delete("/streaming/<stream_id>")
def cancel(stream_id: str) -> Response:
    """Cancel a running generation; readers get ``end`` with ``cancelled``."""
    was_running = state().runner.cancel(stream_id)
    return jsonify(id=stream_id, cancelled=was_running)
