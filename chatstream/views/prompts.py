"""Prompt submission: start a generation, answer with its stream id.

``POST /api/streaming`` answers ``202`` with ``{"id", "stream_url"}``,
``Location`` and ``X-Stream-Id``, and adds the id to the signed session
cookie's recent streams for the seed's id-less
``EventSource('/api/streaming')`` (:mod:`chatstream.session_streams`).

With ``Accept: text/event-stream`` it streams the answer in the same
response, which carries the same ``Location``/``Content-Location`` and
``X-Stream-Id`` so the client can ``GET`` it again after a drop or
``DELETE`` it. Such a POST that also carries a ``Last-Event-ID`` is a
reconnect (``@microsoft/fetch-event-source`` retries by re-sending the
POST): it resumes the session's stream that id names, exactly like the
id-less ``GET`` with that header, and never starts a second generation.

``DELETE /api/streaming/<id>`` cancels.
"""

from __future__ import annotations

from flask import Response
from flask import jsonify
from flask import request

from .. import session_streams
from ..extension import settings
from ..extension import state
from ..ratelimit import client_key
from ..submission import parse_submission
from ..submission import read_json
from . import api
from .streaming import event_stream
from .streaming import resume
from .streaming import stream_headers

bp = api


def _wants_event_stream() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    return best == "text/event-stream"


@bp.post("/streaming")
def submit() -> Response:
    """Start generating an answer to the submitted conversation (or resume one)."""
    config = settings()
    wants_event_stream = _wants_event_stream()
    last_event_id = request.headers.get("Last-Event-ID", "")
    if wants_event_stream and last_event_id.strip():
        stream_id = session_streams.resolve(last_event_id, state().store, config["ATTACH_GRACE_S"])
        return resume(stream_id, last_event_id, stream_headers(stream_id))
    submission = parse_submission(
        read_json(request),
        max_chars=config["MAX_PROMPT_CHARS"],
        max_messages=config["MAX_MESSAGES"],
    )
    stream_id = state().runner.start(
        submission.messages, submission.model, submission.options, client=client_key()
    )
    session_streams.remember(stream_id, claimed=wants_event_stream)
    headers = stream_headers(stream_id)
    if wants_event_stream:
        return event_stream(stream_id, after=0, headers=headers)
    response = jsonify(id=stream_id, stream_url=headers["Location"])
    response.status_code = 202
    response.headers["Location"] = headers["Location"]
    response.headers["X-Stream-Id"] = stream_id
    return response


@bp.delete("/streaming/<stream_id>")
def cancel(stream_id: str) -> Response:
    """Cancel a running generation; readers get ``end`` with ``cancelled``."""
    was_running = state().runner.cancel(stream_id)
    return jsonify(id=stream_id, cancelled=was_running)
