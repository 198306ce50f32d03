"""Server-Sent Events framing: events in, bytes out.

Only framing lives here (no Flask, no store, no adapter), following the
WHATWG HTML "server-sent events" section, 9.2.6 *Interpreting an event stream*:

* a field line is ``name: value`` ended by CR LF, LF or CR; an event ends with
  a blank line;
* ``data`` may not contain a line break, so multi-line data is sent as several
  ``data:`` lines, which the client joins with ``\\n``;
* one leading space after the colon is stripped by the parser, so we always
  write exactly one (a value starting with a space keeps it);
* ``id`` must not contain LF, CR or NUL (the parser ignores such an id),
  ``event`` must not contain a line break;
* a line starting with ``:`` is a comment: we use it as a heartbeat
  (:data:`HEARTBEAT`, a single line);
* ``id`` is the *last* field of every event: a client should take the id
  only when the event is dispatched (at the blank line), but
  ``@microsoft/fetch-event-source`` takes it as soon as the line is parsed,
  so after a cut inside an event it would resume *past* the event it never
  got. Last, the id is parsed only once the data is complete: the window
  shrinks from the whole frame to its final newline (any order is valid SSE);
* an event without an ``id`` field leaves the client's last event id as it
  was, so an id-less event (an error that is not part of the stream, a
  "reconnect" notice) never moves the position a reconnect resumes from.

chatstream's token events carry JSON, which never contains a raw line break,
but :func:`encode` frames any text correctly so it can be property-tested.

Event ids are ``<scope><seq>``: ``scope`` names the stream
(:mod:`chatstream.event_ids`), ``seq`` is the position 1, 2, 3, ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: One encoder for every event: ``json.dumps`` with non-default arguments
#: would build a new ``JSONEncoder`` per call, once per token.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_STRING = json.encoder.encode_basestring  # C-accelerated JSON string escaping

#: A comment line; proxies and browsers see traffic, EventSource ignores it.
#: One line, with no blank line after it: a comment does not need one (a
#: blank line only ends an event), and lenient parsers dispatch an empty
#: message at every blank line (``@microsoft/fetch-event-source`` always,
#: httpx-sse once the stream has sent an id), which a JSON-parsing
#: ``onmessage`` would choke on.
HEARTBEAT = b": ping\n"

#: Every event stream says its charset: text/* without one is ISO-8859-1 to
#: HTTP libraries such as requests (RFC 2616 3.7.1), which garbles UTF-8 text.
CONTENT_TYPE = "text/event-stream; charset=utf-8"


def encode(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Frame one event.

    :param data: the payload; line breaks become separate ``data:`` lines.
    :param event: the event type (``newToken``, ``end``, ...).
    :param id: the event id the browser echoes as ``Last-Event-ID``.
    :param retry: reconnection time in milliseconds.
    :raises ValueError: if ``event`` or ``id`` holds a line break (or ``id`` a NUL).
    """
    parts: list[str] = []
    if event is not None:
        if _LINE_BREAK.search(event):
            raise ValueError("SSE event name must not contain CR or LF")
        parts.append(f"event: {event}\n")
    if retry is not None:
        parts.append(f"retry: {int(retry)}\n")
    for line in _LINE_BREAK.split(data):
        parts.append(f"data: {line}\n")
    if id is not None:  # last: see the module docstring
        if "\0" in id or _LINE_BREAK.search(id):
            raise ValueError("SSE id must not contain CR, LF or NUL")
        parts.append(f"id: {id}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_json(
    payload: Mapping[str, object], *, event: str, id: int | str | None = None, scope: str = ""
) -> bytes:
    """Frame one event whose data is compact JSON (never holds a raw newline).

    ``ensure_ascii=False`` keeps UTF-8 text compact; U+2028/U+2029 are legal
    inside SSE data lines (only CR and LF end a line) and inside JSON strings.

    :param id: the event's position; ``None`` frames an id-less event, which
        leaves the client's ``Last-Event-ID`` where it was (the one way
        chatstream builds error and notice frames that are not stream events).
    :param scope: the stream's id prefix (:func:`chatstream.event_ids.scope`).
    """
    if id is None:
        return f"event: {event}\ndata: {_JSON(payload)}\n\n".encode()
    return f"event: {event}\ndata: {_JSON(payload)}\nid: {scope}{id}\n\n".encode()


def encode_token(text: str, id: int, scope: str = "") -> bytes:
    """Frame one ``newToken`` event: the hot path, once per token.

    Same bytes as ``encode_json({"token": text}, event="newToken", id=id, scope=scope)``,
    with the C string escaper instead of a whole JSON encoder pass.
    """
    return f'event: newToken\ndata: {{"token":{_STRING(text)}}}\nid: {scope}{id}\n\n'.encode()


def retry_field(milliseconds: int) -> bytes:
    """The ``retry:`` line, sent in the same block as a stream's first event.

    A block holding only ``retry:`` is valid SSE, but lenient parsers
    (httpx-sse, ``@microsoft/fetch-event-source``) turn it into an empty
    message event; riding on a real event it is never seen as one.
    """
    return f"retry: {int(milliseconds)}\n".encode()


def retry_line(milliseconds: int) -> bytes:
    """A block holding only ``retry:`` (for tests and tools; streams use :func:`retry_field`)."""
    return f"retry: {int(milliseconds)}\n\n".encode()
