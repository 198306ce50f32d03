"""One simulated chat: POST the prompt, then read and check its event stream.

A chat runs over a single :class:`asyncio.Protocol` (no stream reader, no
per-event coroutine wake-up): socket reads go straight into
:class:`~bench.http_response.ResponseParser`, then
:class:`~bench.sse_events.SSEDecoder`, then :class:`TokenChecker`, which
timestamps the first and last token.  The coroutine only wakes up at
milestones (JSON reply received, stream ended).

Modes:

* ``postget``: ``POST /api/streaming`` (JSON reply with ``stream_url``), then
  ``GET stream_url`` on the same keep-alive connection (a new one if the server
  closed it).
* ``single``: ``POST /api/streaming`` with ``Accept: text/event-stream``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from typing import Literal

from bench.http_response import ProtocolError
from bench.http_response import ResponseParser
from bench.sse_events import SSEDecoder

Mode = Literal["postget", "single"]


@dataclass(slots=True)
class ChatResult:
    """What one chat observed; times are seconds since the chat started."""

    ok: bool
    ttft: float | None = None
    last: float | None = None
    tokens: int = 0
    error: str = ""
    #: Per token, ms later than the stream's most punctual token (paced chats
    #: only; see :meth:`TokenChecker.delays_ms`).
    delays: list[float] | None = None


class ChatFailed(Exception):
    """The chat saw a protocol violation (status, order, missing end...)."""


class TokenChecker:
    """Check that tokens ``"0 "``, ``"1 "``... arrive once and in order, then ``end``.

    :param tokens: how many tokens the model was asked for.
    :param start: ``perf_counter()`` at the start of the chat.
    :param delay_s: the source's pacing, if it paces token ``i`` at ``t0 + i ×
        delay`` (the fake upstream does): then each token's arrival is kept for
        :meth:`delays_ms`.
    :param clock: the time source (tests pass their own).
    """

    __slots__ = (
        "clock", "count", "delay_s", "done", "error", "first", "last", "offsets", "start",
        "tokens",
    )  # fmt: skip

    def __init__(
        self, tokens: int, start: float, delay_s: float = 0.0, clock: Any = time.perf_counter
    ) -> None:
        self.tokens = tokens
        self.start = start
        self.delay_s = delay_s
        self.clock = clock
        #: Per token, its arrival minus its place in the pacing (``i × delay``).
        self.offsets: list[float] = []
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = False
        self.error = ""

    def on_event(self, event: bytes, data: bytes) -> None:
        """Check one event (an :data:`~bench.sse_events.EventSink`)."""
        if self.done or self.error:
            return
        if event == b"newToken":
            now = self.clock()
            token = json.loads(data).get("token")
            if token != f"{self.count} ":
                self.error = f"token {self.count}: got {token!r}"
                return
            if self.count == 0:
                self.first = now
            self.last = now
            if self.delay_s:
                self.offsets.append(now - self.count * self.delay_s)
            self.count += 1
        elif event == b"end":
            reason = json.loads(data).get("finish_reason")
            if self.count != self.tokens:
                self.error = f"end after {self.count}/{self.tokens} tokens"
            elif reason != "stop":
                self.error = f"finish_reason {reason!r}"
            else:
                self.done = True
        else:
            self.error = f"unexpected event {event[:40]!r}: {data[:80]!r}"

    def delays_ms(self) -> list[float] | None:
        """How late each token came, in ms, against the stream's most punctual one.

        The source sends token ``i`` at ``t0 + i × delay``, so ``arrival − i ×
        delay`` is ``t0`` plus that token's latency; its minimum over the
        stream is the fastest path through the server. The difference is what
        the server added to that token: queueing behind other streams' work,
        a blocked loop. Unlike end lag (last − first), it does not reward a
        server whose first token was late, and it sees every token.
        """
        if not self.offsets:
            return None
        best = min(self.offsets)
        return [round((o - best) * 1000, 3) for o in self.offsets]


class ChatProtocol(asyncio.Protocol):
    """Socket side of a chat: parses responses and fires futures at milestones."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser(self._on_body)
        self.body: list[bytes] = []
        self.sse: SSEDecoder | None = None
        self.checker: TokenChecker | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.head_waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def expect(self, checker: TokenChecker | None) -> asyncio.Future[None]:
        """Prepare for the next response; the future resolves when it is complete.

        :param checker: check the body as an event stream, or ``None`` to collect it.
        """
        self.body = []
        self.checker = checker
        self.sse = SSEDecoder(checker.on_event) if checker else None
        self.parser.reset()
        self.waiter = self.loop.create_future()
        self.head_waiter = self.loop.create_future()
        return self.waiter

    def _on_body(self, data: bytes) -> None:
        if self.sse is None:
            self.body.append(data)
        else:
            self.sse.feed(data)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self._finish(exc)
            return
        if self.parser.head_done:
            self._resolve(self.head_waiter, None)
        checker = self.checker
        if checker is not None and (checker.done or checker.error):
            self._finish(None)
        elif self.parser.done:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser.eof()
        if self.parser.done or (self.checker is not None and self.checker.done):
            self._finish(None)
        else:
            self._finish(exc or ConnectionResetError("server closed the connection early"))
        self._resolve(self.head_waiter, None)

    def _finish(self, exc: BaseException | None) -> None:
        self._resolve(self.waiter, exc)

    @staticmethod
    def _resolve(fut: asyncio.Future[None] | None, exc: BaseException | None) -> None:
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def close(self) -> None:
        """Close the socket (idempotent); pending waits end without error."""
        self.checker = None
        self._resolve(self.waiter, None)
        if self.transport is not None and not self.closed:
            self.transport.close()


def build_request(method: str, path: str, port: int, body: bytes = b"", sse: bool = False) -> bytes:
    """Serialise an HTTP/1.1 request with the headers a browser would send."""
    accept = "text/event-stream" if sse else "application/json"
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n"
    if method == "GET":
        head += "Cache-Control: no-cache\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


@dataclass(slots=True)
class ChatSpec:
    """Where and how to run a chat."""

    host: str
    port: int
    mode: Mode
    tokens: int
    delay_ms: int
    prompt: str = "Hello benchmark"
    #: Upstream scenarios: the fake upstream's pacing is in the model name
    #: (``t<T>-d<D>``, see :mod:`bench.fake_upstream`), and no options are sent.
    upstream: bool = False

    def post_body(self) -> bytes:
        """The JSON body of the POST."""
        if self.upstream:
            model = f"t{self.tokens}-d{self.delay_ms}"
            return json.dumps({"prompt": self.prompt, "model": model}).encode()
        opts = {"tokens": self.tokens, "delay_ms": self.delay_ms}
        return json.dumps({"prompt": self.prompt, "options": opts}).encode()


async def _connect(spec: ChatSpec) -> ChatProtocol:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: ChatProtocol(loop), spec.host, spec.port)
    return proto


async def open_stream(
    spec: ChatSpec, checker: TokenChecker
) -> tuple[ChatProtocol, asyncio.Future[None]]:
    """Do the POST (and GET) and return once the stream request is sent.

    :returns: the connection and the future that resolves when the stream ends.
    :raises ChatFailed: on a non-2xx status or a reply without ``stream_url``.
    """
    proto = await _connect(spec)
    assert proto.transport is not None
    body = spec.post_body()
    if spec.mode == "single":
        done = proto.expect(checker)
        proto.transport.write(build_request("POST", "/api/streaming", spec.port, body, sse=True))
        return proto, done
    reply = proto.expect(None)
    proto.transport.write(build_request("POST", "/api/streaming", spec.port, body))
    await reply
    status = proto.parser.status
    if status not in (200, 201, 202):
        raise ChatFailed(f"POST status {status}: {b''.join(proto.body)[:120]!r}")
    url = json.loads(b"".join(proto.body))["stream_url"]
    if not proto.parser.keep_alive or proto.closed:
        proto.close()
        proto = await _connect(spec)
    done = proto.expect(checker)
    assert proto.transport is not None
    proto.transport.write(build_request("GET", url, spec.port, sse=True))
    return proto, done


async def run_chat(spec: ChatSpec) -> ChatResult:
    """Run one chat to its ``end`` event and report what it saw (never raises)."""
    start = time.perf_counter()
    # Only the fake upstream paces on a fixed schedule (the demo model sleeps).
    checker = TokenChecker(spec.tokens, start, spec.delay_ms / 1000 if spec.upstream else 0.0)
    proto: ChatProtocol | None = None
    try:
        proto, done = await open_stream(spec, checker)
        await done
        if proto.parser.status != 200:
            raise ChatFailed(f"stream status {proto.parser.status}")
        if checker.error:
            raise ChatFailed(checker.error)
        if not checker.done:
            raise ChatFailed(f"stream closed after {checker.count}/{spec.tokens} tokens, no end")
    except (OSError, ChatFailed, ProtocolError, ValueError, KeyError) as exc:
        return _failed(checker, f"{type(exc).__name__}: {exc}")
    except asyncio.CancelledError:
        return _failed(checker, "timeout")
    finally:
        if proto is not None:
            proto.close()
    return ChatResult(
        True, checker.first - start, checker.last - start, checker.count, "", checker.delays_ms()
    )


def _failed(checker: TokenChecker, error: str) -> ChatResult:
    start = checker.start
    ttft = checker.first - start if checker.count else None
    last = checker.last - start if checker.count else None
    return ChatResult(False, ttft, last, checker.count, error)
