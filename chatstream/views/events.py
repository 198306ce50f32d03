"""``GET`` of an event stream: it only reads the stream store.

``GET /api/streaming/<id>`` replays the stream, or resumes it after
``Last-Event-ID``; the id in the URL is the capability. The seed's id-less
``GET /api/streaming`` reads a stream this browser submitted, chosen by
:mod:`chatstream.session_streams`. The responses themselves (SSE, ``204``)
are built by :mod:`chatstream.views.streaming`, shared with the POST form.
"""

from __future__ import annotations

from flask import Response
from flask import request

from .. import session_streams
from ..extension import settings
from ..extension import state
from . import api
from .streaming import resume
from .streaming import stream_headers

bp = api


@bp.get("/streaming/<stream_id>")
def stream(stream_id: str) -> Response:
    """Replay the stream from the start, or resume after ``Last-Event-ID``."""
    session_streams.claim(stream_id)
    return resume(stream_id, request.headers.get("Last-Event-ID", ""), stream_headers(stream_id))


@bp.get("/streaming")
def latest() -> Response:
    """The seed's contract: a stream this browser submitted (:mod:`~chatstream.session_streams`)."""
    last_event_id = request.headers.get("Last-Event-ID", "")
    stream_id = session_streams.resolve(last_event_id, state().store, settings()["ATTACH_GRACE_S"])
    session_streams.claim(stream_id)
    return resume(stream_id, last_event_id, stream_headers(stream_id))
