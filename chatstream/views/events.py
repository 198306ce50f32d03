"""The ``text/event-stream`` view: it only reads the stream store.

Under WSGI a client disconnect is noticed only when a write fails; the server
then closes the response iterable and ``GeneratorExit`` is raised at the
current ``yield`` (pallets/flask#4385). So the generator never waits longer
than one heartbeat: the app's :class:`~chatstream.heartbeat.Ticker` wakes it
every ``HEARTBEAT_S``, it writes ``: ping`` when nothing came, and it detaches
from the stream in ``finally``.
Data is passed to the generator as arguments (no ``stream_with_context``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Response
from flask import request

from .. import metrics
from .. import shutdown
from .. import sse
from ..errors import BadRequest
from ..errors import NotFound
from ..extension import State as Chatstream
from ..extension import settings
from ..extension import state
from ..session import session
from . import api

bp = api

#: Set by the view itself, so no proxy setting or handler can drop them.
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
_EVENT_ID = re.compile(r"[0-9]{1,12}")


def _last_event_id(last_id: int) -> int:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return 0
    if not _EVENT_ID.fullmatch(raw) or int(raw) > last_id:
        raise BadRequest(
            "Last-Event-ID is not an event id of this stream.", code="invalid_last_event_id"
        )
    return int(raw)


def _events(ext: Chatstream, stream_id: str, after: int, retry_ms: int) -> Iterator[bytes]:
    try:
        reader = ext.store.open_reader(stream_id)
    except NotFound:
        return
    ext.readers += 1
    ext.ticker.ensure()
    metrics.READERS_ACTIVE.inc()
    try:
        yield sse.retry_line(retry_ms)
        while True:
            # No timeout: the app's heartbeat ticker wakes us every HEARTBEAT_S.
            chunk = reader.read(after, None)
            if ext.draining and not chunk.finished:
                yield chunk.data + shutdown.RECONNECT
                return
            if chunk.data:
                after = chunk.last_id
                yield chunk.data
            elif not chunk.finished:
                yield sse.HEARTBEAT
            if chunk.finished:
                return
    finally:
        ext.readers -= 1
        metrics.READERS_ACTIVE.dec()
        reader.close()


def event_stream(stream_id: str, after: int) -> Response:
    """The SSE response for ``stream_id``, starting after event ``after``."""
    generator = _events(state(), stream_id, after, settings()["RETRY_MS"])
    return Response(generator, status=200, headers=SSE_HEADERS, content_type="text/event-stream")


def _resume(stream_id: str) -> Response:
    last_id, finished = state().store.status(stream_id)
    after = _last_event_id(last_id)
    if finished and after >= last_id:
        # Everything was delivered: 204 tells EventSource to stop reconnecting.
        return Response(status=204, headers=SSE_HEADERS)
    return event_stream(stream_id, after)


@bp.get("/streaming/<stream_id>")
def stream(stream_id: str) -> Response:
    """Replay the stream from the start, or resume after ``Last-Event-ID``."""
    return _resume(stream_id)


@bp.get("/streaming")
def latest() -> Response:
    """The seed's contract: the latest stream this browser submitted."""
    stream_id = session.get("stream")
    if not isinstance(stream_id, str):
        raise NotFound("This browser has not submitted a prompt yet.")
    return _resume(stream_id)
