"""The event-stream responses both API views send (no blueprint here).

``views/events.py`` (GET) and ``views/prompts.py`` (POST with
``Accept: text/event-stream``) answer with the same responses:

* :func:`resume`: the stream after a ``Last-Event-ID``, or ``204`` with no
  body and no content type once everything was delivered (``204`` tells
  ``EventSource`` to stop reconnecting);
* :func:`stream_headers`: ``Location``/``Content-Location`` (the stream URL)
  and ``X-Stream-Id``, so any client of the single-request form learns the
  stream it got and can ``GET`` it again or ``DELETE`` it.

The response generator follows the WSGI rules of ``docs/patterns/streaming``:
every header is set before the body, data is passed in as arguments (no
``stream_with_context``), and cleanup is a ``with`` around the generator's
body, since a disconnect is noticed only when a write fails and then
``GeneratorExit`` is raised at the current ``yield`` (pallets/flask#4385).
The generator never waits longer than one heartbeat: the reader lifecycle's
ticker (:mod:`chatstream.readers`) wakes it every ``HEARTBEAT_S`` and it
writes ``: ping`` when nothing came.

``retry:`` travels in the same block as the first event, never alone: a
``retry:``-only block becomes an empty message event in httpx-sse and
``@microsoft/fetch-event-source``. When no event is ready as the response
starts, a ``: ping`` comment goes out at once instead, so the headers and
first byte never wait on the model (Heroku's 30 s first-byte window).
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response
from flask import url_for

from .. import event_ids
from .. import sse
from ..errors import BadRequest
from ..extension import settings
from ..extension import state
from ..readers import RECONNECT
from ..readers import Attachment
from ..readers import Readers

#: Set by the view itself, so no proxy setting or handler can drop them.
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def stream_headers(stream_id: str) -> dict[str, str]:
    """Where the stream lives: ``Location``, ``Content-Location``, ``X-Stream-Id``."""
    url = url_for("chatstream.api.stream", stream_id=stream_id)
    return {"Location": url, "Content-Location": url, "X-Stream-Id": stream_id}


def _events(readers: Readers, attachment: Attachment, after: int, retry_ms: int) -> Iterator[bytes]:
    preamble = sse.retry_field(retry_ms)  # joins the first event's block
    with attachment as reader:
        chunk = reader.read(after, 0)  # no wait: the first byte goes out now
        while True:
            if readers.draining and not chunk.finished:
                yield preamble + chunk.data + RECONNECT
                return
            if chunk.data:
                after = chunk.last_id
                yield preamble + chunk.data if preamble else chunk.data
                preamble = b""
            elif not chunk.finished:
                yield sse.HEARTBEAT
            if chunk.finished:
                return
            # No timeout: the heartbeat ticker wakes us every HEARTBEAT_S.
            chunk = reader.read(after, None)


def event_stream(stream_id: str, after: int, headers: dict[str, str] | None = None) -> Response:
    """The SSE response for ``stream_id``, starting after event ``after``.

    :raises NotFound: unknown or expired stream.
    """
    readers = state().readers
    attachment = readers.attach(stream_id)
    generator = _events(readers, attachment, after, settings()["RETRY_MS"])
    response = Response(
        generator,
        status=200,
        headers={**SSE_HEADERS, **(headers or {})},
        content_type=sse.CONTENT_TYPE,
    )
    response.call_on_close(attachment.close)  # a body that never started
    return response


def no_content(headers: dict[str, str] | None = None) -> Response:
    """``204``: no body, and no content type (Flask would say ``text/html``)."""
    response = Response(status=204, headers={**SSE_HEADERS, **(headers or {})})
    del response.headers["Content-Type"]
    return response


def _position(stream_id: str, last_event_id: str, last_id: int) -> int:
    if not last_event_id.strip():
        return 0
    parsed = event_ids.parse(last_event_id)
    if (
        parsed is None
        or parsed.seq > last_id
        or (parsed.tag is not None and parsed.tag != event_ids.tag(stream_id))
    ):
        raise BadRequest(
            "Last-Event-ID is not an event id of this stream.", code="invalid_last_event_id"
        )
    return parsed.seq


def resume(stream_id: str, last_event_id: str, headers: dict[str, str] | None = None) -> Response:
    """The stream after ``last_event_id`` (all of it if empty), or ``204`` when all was sent.

    :param last_event_id: the raw header: ``<tag>.<seq>`` with this stream's
        tag, or a plain ``<seq>``.
    :raises NotFound: unknown or expired stream.
    :raises BadRequest: the id is malformed, names another stream, or is ahead.
    """
    last_id, finished = state().store.status(stream_id)
    after = _position(stream_id, last_event_id, last_id)
    if finished and after >= last_id:
        return no_content(headers)
    return event_stream(stream_id, after, headers)
