"""Chat-completion deltas out of a raw, bounded SSE byte stream.

The openai adapter reads the upstream's body as raw bytes through the SDK
(auth, base URL, retries and status errors stay the SDK's) and this module
turns them into tokens. It pulls out only what chatstream uses:
``choices[*].delta.content``, ``choices[*].finish_reason`` and ``usage``.

Deliberately hand-written, not the SDK's ``Stream`` or ``iter_lines()``:

* **Cost.** The SDK builds a pydantic ``ChatCompletionChunk`` per chunk
  (about 250 µs of CPU, three quarters of it in ``construct_type``); here a
  chunk is one ``jiter`` parse (about 1 µs; ``jiter`` is already an ``openai``
  dependency, and ``orjson``/``msgspec`` measured within 0.7 µs of it, not
  worth a new dependency) and a few dict lookups.
* **Bounds.** httpx's line decoder (and the SDK's SSE decoder) buffer until a
  newline, however long: an upstream sending ``data: {"x":"`` and then bytes
  without a newline grows the worker without bound (issue 9). Here a line or
  an event's data over ``max_event_bytes``, or a body over
  ``max_response_bytes``, raises :class:`UpstreamProtocolError`, and
  ``pause()`` is called every ``pause_every`` bytes so that a fast sender
  cannot keep the gevent hub from the other streams.

Meaning kept from the SDK (``openai._streaming.Stream.__stream__``): lines end
with CRLF, LF or CR (WHATWG SSE); ``data:`` lines of one event are joined with
``\\n``; an event whose data starts with ``[DONE]`` ends the stream; a JSON
object with a truthy ``error`` raises the stream error (after the deltas
already yielded); other fields (``event:``, ``id:``, ``retry:``) and comments
are ignored. Empty, role-only and tool-call deltas yield nothing.

Where chatstream is stricter than the SDK, so that an answer is never lost
without an error (:meth:`ChatChunkDecoder.body`): a body the upstream
compressed although chatstream asked for ``identity`` is refused (not
decompressed: one small chunk could expand without bound); a whole JSON
completion (an upstream that ignored ``stream``) is read, capped, as one
token; an event the body ends in without its blank line is still dispatched
(the SDK drops it); and a body that ends without a single ``data:`` line is a
protocol error, not an empty answer (an HTML page from a proxy, binary).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import jiter

from .base import FinishReason
from .upstream_errors import UpstreamInvalidJSON
from .upstream_errors import UpstreamProtocolError
from .upstream_errors import stream_error

__all__ = ["ChatChunkDecoder"]

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_STREAM_ERROR = "An error occurred during streaming"  # the SDK's fallback message


def _nothing() -> None:
    pass


class ChatChunkDecoder:
    """Decode one streamed chat completion; read :attr:`reason` and :attr:`usage` after.

    :param max_event_bytes: cap on one line and on one event's data.
    :param max_response_bytes: cap on the whole body.
    :param pause: called every ``pause_every`` bytes read (hand the hub back).
    :param pause_every: bytes between two ``pause()`` calls.
    :param on_finish: called once, before reading on, when a ``finish_reason``
        came but ``[DONE]`` did not come in the same chunk.
    """

    __slots__ = (
        "max_event_bytes",
        "max_response_bytes",
        "pause",
        "pause_every",
        "reason",
        "usage",
        "done",
        "_pending",
        "_data",
        "_data_size",
        "_cr",
        "_seen_data",
        "finished",
        "on_finish",
    )

    def __init__(
        self,
        *,
        max_event_bytes: int,
        max_response_bytes: int,
        pause: Callable[[], None] = _nothing,
        pause_every: int = 65_536,
        on_finish: Callable[[], None] = _nothing,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_response_bytes = max_response_bytes
        self.pause = pause
        self.pause_every = pause_every
        #: The last ``finish_reason`` seen (``stop`` when none was).
        self.reason: FinishReason = "stop"
        #: Token usage from the last chunk that carried it.
        self.usage: dict[str, int] | None = None
        #: ``[DONE]`` was received.
        self.done = False
        #: A ``finish_reason`` was received: the answer's text is complete.
        self.finished = False
        #: Called once, when a chunk held a ``finish_reason`` but not ``[DONE]``.
        self.on_finish = on_finish
        self._pending = bytearray()  # the unfinished last line
        self._data: list[bytes] = []  # data lines of the current event
        self._data_size = 0
        self._cr = False  # the previous chunk ended with CR (maybe half of a CRLF)
        self._seen_data = False  # a ``data:`` line came

    def body(self, headers: Mapping[str, str], chunks: Iterable[bytes]) -> Iterator[str]:
        """Yield the text of a response with these ``headers`` and raw body ``chunks``.

        An event stream goes to :meth:`tokens`, a whole JSON completion to
        :meth:`completion`.

        :raises UpstreamProtocolError: the body is compressed (chatstream asks
            for ``identity``), or see :meth:`tokens`.
        """
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise UpstreamProtocolError(
                f"The model server sent a {encoding}-encoded body although chatstream asks "
                "for an unencoded one (Accept-Encoding: identity); it was not decompressed."
            )
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == "application/json":
            return self._json_or_events(chunks, media)
        return self.tokens(chunks, media)

    def _json_or_events(self, chunks: Iterable[bytes], media: str) -> Iterator[str]:
        """A whole completion if the body starts as JSON (``{`` or ``[``); an
        event stream labelled ``application/json`` (a mislabelling server) otherwise."""
        rest = iter(chunks)
        first = b""
        for first in rest:
            if first.strip():
                break
        body = itertools.chain((first,), rest)
        if first.lstrip()[:1] in (b"{", b"["):
            yield from self.completion(body)
        else:
            yield from self.tokens(body, media)

    def tokens(self, chunks: Iterable[bytes], media: str = "") -> Iterator[str]:
        """Yield the text deltas of the raw body ``chunks``, in order.

        :param media: the response's media type, for the error message.
        :raises UpstreamProtocolError: a bound was exceeded, a chunk is not a
            JSON object, or the body ended without any ``data:`` line.
        :raises UpstreamInvalidJSON: a ``data:`` line is not JSON.
        :raises UpstreamError: the upstream sent an ``error`` object.
        """
        for chunk in self._capped(chunks):
            yield from self._events(self._lines(chunk))
            if self.done:
                return
            if self.finished and self.on_finish is not _nothing:
                # The text is complete and the body goes on (usage, [DONE]):
                # tell the caller once, before waiting for more.
                on_finish, self.on_finish = self.on_finish, _nothing
                on_finish()
        if self._cr:  # the body ended on a CR: it was a line end after all
            self._cr = False
            yield from self._events(self._lines(b"\n"))
        # The body ended without [DONE]: the event it ended in counts even
        # without its blank line (the SDK would drop it, and its tokens).
        last = [bytes(self._pending), b""] if self._pending else [b""]
        self._pending.clear()
        yield from self._events(last)
        if not self._seen_data:
            kind = f" ({media})" if media else ""
            raise UpstreamProtocolError(
                f"The model server's response{kind} ended without any event-stream data; "
                "it is not a streamed chat completion."
            )

    def completion(self, chunks: Iterable[bytes]) -> Iterator[str]:
        """Yield the text of a whole JSON chat completion (the upstream did not stream).

        The whole body is one event, so it is read up to the event cap; then
        its ``choices[*].message`` give the text, as one token per choice.

        :raises UpstreamProtocolError: a bound was exceeded, or it is not a chat completion.
        :raises UpstreamInvalidJSON: the body is not JSON.
        :raises UpstreamError: the upstream sent an ``error`` object.
        """
        data = bytearray()
        for chunk in self._capped(chunks):
            data += chunk
            if len(data) > self.max_event_bytes:
                raise UpstreamProtocolError(
                    f"The model server sent a JSON answer longer than {self.max_event_bytes} "
                    "bytes (CHATSTREAM_OPENAI_MAX_EVENT_BYTES); it was not read."
                )
        try:
            whole: Any = jiter.from_json(bytes(data))
        except ValueError:
            raise UpstreamInvalidJSON(
                "The model server sent a JSON response that is not valid JSON."
            ) from None
        if type(whole) is not dict:
            raise UpstreamProtocolError(
                "The model server sent a JSON response that is not a JSON object."
            )
        if not whole.get("error") and type(whole.get("choices")) is not list:
            raise UpstreamProtocolError(
                "The model server answered with JSON that is not a chat completion (no choices)."
            )
        self.done = True
        yield from self._texts(whole, "message")

    def _capped(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks``, under the response cap, pausing every ``pause_every`` bytes."""
        total = 0
        unpaused = 0
        for chunk in chunks:
            size = len(chunk)
            total += size
            if total > self.max_response_bytes:
                raise UpstreamProtocolError(
                    f"The model server sent more than {self.max_response_bytes} bytes for one "
                    "answer (CHATSTREAM_OPENAI_MAX_RESPONSE_BYTES); the answer was cut."
                )
            unpaused += size
            if unpaused >= self.pause_every:
                unpaused = 0
                self.pause()
            yield chunk

    def _events(self, lines: list[bytes]) -> Iterator[str]:
        for line in lines:
            if line:
                self._field(line)
                continue
            if not self._data:  # a blank line with no data: nothing to dispatch
                continue
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            self._data = []
            self._data_size = 0
            if data.startswith(b"[DONE]"):
                self.done = True
                return
            yield from self._deltas(data)

    def _lines(self, chunk: bytes) -> list[bytes]:
        """The complete lines in ``chunk`` (after what was pending), without terminators."""
        if b"\r" in chunk or self._cr:
            chunk = self._normalise_cr(chunk)
        newline = chunk.find(b"\n")
        if newline < 0:
            self._pending += chunk
            self._check_line(len(self._pending))
            return []
        if self._pending:
            self._pending += chunk[:newline]
            lines = [bytes(self._pending)]
            self._pending.clear()
            lines += chunk[newline + 1 :].split(b"\n")
        else:
            lines = chunk.split(b"\n")
        self._pending += lines.pop()
        self._check_line(max(map(len, lines)))
        self._check_line(len(self._pending))
        return lines

    def _normalise_cr(self, chunk: bytes) -> bytes:
        # JSON strings cannot hold raw CR or LF, so rewriting every line end to
        # LF changes no data. A CR at the end of a chunk may be the first half
        # of a CRLF: keep it back until the next chunk says.
        if self._cr:
            self._cr = False
            chunk = b"\r" + chunk
        if chunk.endswith(b"\r"):
            self._cr = True
            chunk = chunk[:-1]
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _check_line(self, size: int) -> None:
        if size > self.max_event_bytes:
            raise UpstreamProtocolError(
                f"The model server sent a line longer than {self.max_event_bytes} bytes "
                "(CHATSTREAM_OPENAI_MAX_EVENT_BYTES); the answer was cut."
            )

    def _field(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return  # a comment, or event:/id:/retry:, which chat completions do not use
        value = line[6:] if line[5:6] == b" " else line[5:]
        self._seen_data = True
        self._data_size += len(value) + 1
        if self._data_size > self.max_event_bytes:
            self._check_line(self._data_size)
        self._data.append(value)

    def _deltas(self, data: bytes) -> Iterator[str]:
        try:
            chunk: Any = jiter.from_json(data)
        except ValueError:
            raise UpstreamInvalidJSON(
                "The model server sent a stream line that is not valid JSON."
            ) from None
        if type(chunk) is not dict:
            raise UpstreamProtocolError(
                "The model server sent a stream chunk that is not a JSON object."
            )
        return self._texts(chunk, "delta")

    def _texts(self, chunk: dict[str, Any], key: str) -> Iterator[str]:
        """The text of each choice's ``key`` (``delta`` streamed, ``message``
        whole); records usage and finish reason, raises an ``error`` object."""
        error = chunk.get("error")
        if error:
            message = error.get("message") if type(error) is dict else None
            raise stream_error(message if isinstance(message, str) and message else _STREAM_ERROR)
        usage = chunk.get("usage")
        if type(usage) is dict:
            self.usage = {name: _int(usage.get(name)) for name in _USAGE_KEYS}
        choices = chunk.get("choices")
        if type(choices) is not list:
            return
        for choice in choices:
            if type(choice) is not dict:
                continue
            part = choice.get(key)
            if type(part) is dict:
                content = part.get("content")
                if content and type(content) is str:
                    yield content
            finish = choice.get("finish_reason")
            if finish:
                self.reason = _FINISH.get(finish, "stop") if type(finish) is str else "stop"
                self.finished = True


def _int(value: Any) -> int:
    return value if type(value) is int else 0
