"""A real local HTTP server that speaks OpenAI's chat-completions streaming wire format.

Tests of the adapter built on the official ``openai`` SDK point the SDK at it::

    with FakeOpenAI() as fake:
        fake.push(http_error(429, "requests", "slow down", code="rate_limit_exceeded",
                             headers={"retry-after-ms": "10"}),
                  tokens(["Hel", "lo"]))
        client = OpenAI(base_url=fake.base_url, api_key="x")
        ...
        assert fake.responses[-1].client_closed.wait(5)

Each ``POST /v1/chat/completions`` takes the next scenario pushed with
:meth:`FakeOpenAI.push`, or streams ``default_tokens`` when none is queued. The
stream is the one documented at https://platform.openai.com/docs/api-reference/chat-streaming:
a role chunk, one chunk per token, a ``finish_reason`` chunk, a ``choices: []``
usage chunk when ``stream_options.include_usage`` is set (every other chunk then
carries ``"usage": null``), and ``data: [DONE]``. Chunks go out with HTTP/1.1
chunked transfer encoding, one write per event, so the SDK reads them as they come.

Deliberately odd:

- A client that closes the connection is noticed in two ways: a failed write
  (the first write after the close usually succeeds, the next one fails), and,
  while the server waits between tokens or stalls, by peeking at the socket for
  EOF. So a slow or stalled stream notices the close at once.
- :func:`drop_after` ends the TCP connection with a FIN in the middle of the
  chunked body, as a proxy cut does; the client sees an incomplete chunked read.
- :meth:`FakeOpenAI.stop` shuts down every open connection, so handlers that
  stall or wait for the next keep-alive request end at once.

Run ``python -m tests.fakes.openai_server --port N`` for a standalone server; it
prints its base URL on the first line of stdout and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from itertools import cycle
from itertools import islice
from types import TracebackType
from typing import Any
from typing import Literal

log = logging.getLogger(__name__)

DEFAULT_TOKENS = ("Hello", ",", " world", "!")
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class StreamScenario:
    """A ``200`` event stream: role chunk, optional stall, tokens, then ``end``.

    ``tokens=None`` means the server's default tokens; ``count`` cuts or cycles
    them to that many. ``usage=False`` leaves out the usage chunk even when the
    request asks for it.
    """

    tokens: tuple[str, ...] | None = None
    count: int | None = None
    delay_s: float = 0.0
    stall_s: float = 0.0
    end: Literal["finish", "drop", "error"] = "finish"
    finish_reason: Literal["stop", "length"] = "stop"
    usage: bool = True
    error_message: str = ""


@dataclass(frozen=True)
class ErrorScenario:
    """A JSON error response, as OpenAI sends before any stream starts."""

    status: int
    error_type: str
    message: str
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


HostileMode = Literal[
    "flood",
    "huge_chunk",
    "big_tokens",
    "invalid_json",
    "done_at_once",
    "close_mid_chunk",
    "not_http",
    "endless_headers",
    "gzip_body",
    "json_completion",
    "html_page",
    "finish_then_hang",
    "finish_then_drop",
]


@dataclass(frozen=True)
class HostileScenario:
    """A misbehaving upstream (issue 9), bounded in bytes and time.

    ``flood``: ``data: {"x":"`` then bytes without a newline; ``huge_chunk``:
    one HTTP chunk holding one ``data:`` line of ``max_bytes`` of content;
    ``big_tokens``: valid token chunks of ``piece`` bytes each, without end;
    ``invalid_json``: a token, then a data line that is not JSON, then
    ``[DONE]``; ``done_at_once``: ``data: [DONE]`` first; ``close_mid_chunk``:
    a token, then half an HTTP chunk and a FIN; ``not_http``: bytes that are
    not an HTTP response, then a FIN; ``endless_headers``: a status line, then
    header lines without end; ``gzip_body``: a whole event stream (tokens
    ``Hel``, ``lo``), gzip-compressed with ``Content-Encoding: gzip`` although
    the client asked for ``identity``; ``json_completion``: a whole,
    non-streamed chat completion (``application/json``, content
    ``Hello there``), as a server that ignores ``stream`` sends;
    ``html_page``: a ``200`` HTML error page, as a misconfigured proxy sends;
    ``finish_then_hang``: tokens ``a``, ``b``, a ``finish_reason: stop`` chunk,
    then neither usage nor ``[DONE]`` and the connection held open;
    ``finish_then_drop``: the same, then a FIN without the body's last chunk.
    The writer stops at
    ``max_bytes`` or ``max_s``, or as soon as the client closes.
    """

    mode: HostileMode
    max_bytes: int = 200 << 20
    max_s: float = 20.0
    piece: int = 64 << 10


Scenario = StreamScenario | ErrorScenario | HostileScenario


def tokens(
    items: Sequence[str],
    delay_s: float = 0.0,
    finish_reason: Literal["stop", "length"] = "stop",
    usage: bool = True,
) -> StreamScenario:
    """Stream ``items``, waiting ``delay_s`` before each, then finish normally."""
    return StreamScenario(tuple(items), delay_s=delay_s, finish_reason=finish_reason, usage=usage)


def http_error(
    status: int,
    error_type: str,
    message: str,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ErrorScenario:
    """Answer with ``status`` and ``{"error": {message, type, param, code}}``."""
    return ErrorScenario(status, error_type, message, code, dict(headers or {}))


def drop_after(n_tokens: int, items: Sequence[str] | None = None) -> StreamScenario:
    """Send ``n_tokens`` tokens, then close the TCP connection mid-body."""
    return StreamScenario(_maybe_tuple(items), n_tokens, end="drop")


def stream_error_after(n: int, message: str, items: Sequence[str] | None = None) -> StreamScenario:
    """Send ``n`` tokens, then ``data: {"error": {...}}`` and end the body."""
    return StreamScenario(_maybe_tuple(items), n, end="error", error_message=message)


def stall(seconds: float) -> StreamScenario:
    """Send headers and the role chunk, wait ``seconds``, then stream the defaults.

    The wait ends early when the client closes or the server stops.
    """
    return StreamScenario(stall_s=seconds)


def hostile(mode: HostileMode, **bounds: Any) -> HostileScenario:
    """A misbehaving upstream; see :class:`HostileScenario`."""
    return HostileScenario(mode, **bounds)


def _maybe_tuple(items: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if items is None else tuple(items)


@dataclass
class RecordedRequest:
    """One request as received: lower-cased headers and the parsed JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ResponseRecord:
    """What the server did for one request.

    ``tokens_written`` counts token chunks whose write succeeded (the kernel took
    them; the client may not have read them); ``bytes_written`` counts the body
    bytes of a hostile scenario the same way. ``client_closed`` is set when the
    client went away before the response ended; ``finished`` when the handler is done.
    """

    request: RecordedRequest
    scenario: Scenario
    status: int = 0
    tokens_written: int = 0
    bytes_written: int = 0
    client_closed: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        self.stopping = threading.Event()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        #: TCP connections accepted so far (keep-alive reuse shows as fewer).
        self.connections = 0
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.socket.getsockname()[:2]
        self.server_name = str(host)

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn keeps no handle on daemon threads, so track them here,
        # in the accept thread, so that stop() sees every accepted connection.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="fake-openai-handler",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = thread
            self.connections += 1
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """Shut every open connection down and join its handler thread."""
        with self._open_lock:
            open_now = list(self._open.items())
        for conn, _ in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # Already closed by its handler.
        for _, thread in open_now:
            thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # The client went away, or stop() shut the socket.
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest("POST", self.path, headers, body)
        scenario: Scenario
        if self.path != CHAT_PATH:
            scenario = http_error(404, "invalid_request_error", "Unknown URL")
        elif not isinstance(body, dict) or body.get("stream") is not True:
            scenario = http_error(400, "invalid_request_error", "Needs stream=true")
        else:
            scenario = self.server.fake.next_scenario()
        record = self.server.fake.record(request, scenario)
        try:
            if isinstance(scenario, ErrorScenario):
                self._json_error(record, scenario)
            elif isinstance(scenario, HostileScenario):
                self._hostile(record, scenario)
            else:
                self._stream(record, scenario, body or {})
        finally:
            record.finished.set()

    def _json_error(self, record: ResponseRecord, plan: ErrorScenario) -> None:
        error = {
            "message": plan.message,
            "type": plan.error_type,
            "param": None,
            "code": plan.code,
        }
        # OpenAI pretty-prints error bodies with four spaces.
        data = json.dumps({"error": error}, indent=4).encode()
        record.status = plan.status
        self.send_response(plan.status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        for name, value in plan.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, record: ResponseRecord, plan: StreamScenario, body: dict[str, Any]) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-fake{id(record):x}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_fake",
        }
        tail: dict[str, Any] = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            return {**base, "choices": [choice], **tail}

        items = plan.tokens if plan.tokens is not None else self.server.fake.default_tokens
        if plan.count is not None:
            items = tuple(islice(cycle(items), plan.count))
        record.status = 200
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self._event(chunk({"role": "assistant", "content": ""}))
            if plan.stall_s and not self._pause(plan.stall_s, record):
                return
            for token in items:
                if plan.delay_s and not self._pause(plan.delay_s, record):
                    return
                self._event(chunk({"content": token}))
                record.tokens_written += 1
            if plan.end == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if plan.end == "error":
                error = {"message": plan.error_message, "type": "server_error"}
                self._event({"error": {**error, "param": None, "code": None}})
            else:
                self._event(chunk({}, plan.finish_reason))
                if include_usage and plan.usage:
                    usage = _usage(body, record.tokens_written)
                    self._event({**base, "choices": [], "usage": usage})
                self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")  # Last chunk: RFC 9112 section 7.1.
        except ConnectionError:  # BrokenPipe, ConnectionReset, ConnectionAborted.
            self.close_connection = True
            if not self.server.stopping.is_set():
                record.client_closed.set()

    def _hostile(self, record: ResponseRecord, plan: HostileScenario) -> None:
        record.status = 200
        self.close_connection = True
        deadline = time.monotonic() + plan.max_s

        def send(data: bytes) -> bool:
            """Write raw bytes; False once a bound is reached or the client left."""
            if time.monotonic() > deadline or self.server.stopping.is_set():
                return False
            self.wfile.write(data)
            record.bytes_written += len(data)
            return record.bytes_written < plan.max_bytes

        def token(text: str) -> bytes:
            chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            return self._frame(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        try:
            mode = plan.mode
            if mode == "not_http":
                send(b"SSH-2.0-OpenSSH_9.6\r\n\r\nnot an HTTP response\r\n")
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == "endless_headers":
                if send(b"HTTP/1.1 200 OK\r\n"):
                    filler = b"x-filler: " + b"a" * 1000 + b"\r\n"
                    while send(filler):
                        pass
                return
            if mode in ("gzip_body", "json_completion", "html_page"):
                media, payload = self._whole_body(mode)
                self.send_response(200)
                self.send_header("content-type", media)
                if mode == "gzip_body":
                    self.send_header("content-encoding", "gzip")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                send(payload)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if mode == "flood":
                if send(self._frame(b'data: {"x":"')):
                    filler = self._frame(b"A" * plan.piece)
                    while send(filler):
                        pass
            elif mode == "huge_chunk":
                head = b'data: {"choices":[{"index":0,"delta":{"content":"'
                tail = b'"},"finish_reason":null}]}\n\n'
                size = len(head) + plan.max_bytes + len(tail)
                if send(b"%x\r\n" % size + head):
                    filler = b"A" * plan.piece
                    while send(filler):
                        pass
            elif mode == "big_tokens":
                filler = token("A" * plan.piece)
                while send(filler):
                    pass
            elif mode == "invalid_json":
                send(token("ok"))
                send(self._frame(b'data: {"choices": [oops\n\n'))
                send(self._frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            elif mode == "done_at_once":
                send(self._frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            elif mode in ("finish_then_hang", "finish_then_drop"):
                finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                send(token("a") + token("b"))
                send(self._frame(b"data: " + json.dumps(finish).encode() + b"\n\n"))
                if mode == "finish_then_drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._pause(plan.max_s, record)
            elif mode == "close_mid_chunk":
                send(token("a"))
                send(b"64\r\n" + b'data: {"choices":')  # 100 bytes announced, 17 sent
                self.connection.shutdown(socket.SHUT_RDWR)
        except (ConnectionError, OSError):
            if not self.server.stopping.is_set():
                record.client_closed.set()

    @staticmethod
    def _whole_body(mode: HostileMode) -> tuple[str, bytes]:
        """The media type and body of a ``Content-Length`` hostile mode."""
        if mode == "json_completion":
            message = {"role": "assistant", "content": "Hello there"}
            completion = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
            }
            return "application/json", json.dumps(completion).encode()
        if mode == "html_page":
            return "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
        events = b""
        for text in ("Hel", "lo"):
            delta = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            events += b"data: " + json.dumps(delta).encode() + b"\n\n"
        return "text/event-stream", gzip.compress(events + b"data: [DONE]\n\n")

    @staticmethod
    def _frame(payload: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(payload), payload)

    def _event(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        payload = b"data: " + text.encode() + b"\n\n"
        # One chunk per event, written straight to the socket (wbufsize is 0).
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _pause(self, seconds: float, record: ResponseRecord) -> bool:
        """Wait ``seconds``; ``False`` if the client or the server ended first."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            # Check after select(): stop() shuts the socket, which also reads as EOF.
            if self.server.stopping.is_set():
                self.close_connection = True
                return False
            if readable and self._peer_closed():
                self.close_connection = True
                record.client_closed.set()
                return False
            if readable:  # Unexpected bytes, not EOF: just sleep out the pause.
                self.server.stopping.wait(remaining)
        return True

    def _peer_closed(self) -> bool:
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except ConnectionError:
            return True
        return peeked == b""


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    """Count prompt "tokens" as whitespace-separated words of the messages' text."""
    words = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [content] if isinstance(content, str) else content or []
        for part in parts:
            text = part if isinstance(part, str) else part.get("text", "")
            words += len(str(text).split())
    return {
        "prompt_tokens": words,
        "completion_tokens": completion_tokens,
        "total_tokens": words + completion_tokens,
    }


class FakeOpenAI:
    """A scripted OpenAI stand-in on a loopback port, served from a daemon thread.

    :param default_tokens: tokens streamed when no scenario is queued.
    :param default_delay_s: wait before each default token.
    :param host: interface to bind.
    :param port: port to bind; ``0`` picks a free one.
    """

    def __init__(
        self,
        default_tokens: Sequence[str] = DEFAULT_TOKENS,
        default_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.default_tokens = tuple(default_tokens)
        self.default_delay_s = default_delay_s
        self._address = (host, port)
        self._lock = threading.Lock()
        self._scenarios: deque[Scenario] = deque()
        self._requests: list[RecordedRequest] = []
        self._responses: list[ResponseRecord] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAI:
        """Bind and serve in a daemon thread; the port accepts connections on return."""
        self._httpd = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every open connection and join all handler threads."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.end_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def close_connections(self) -> None:
        """Close every open connection, idle keep-alive ones included (an
        upstream restart, or its keep-alive timeout)."""
        if self._httpd is not None:
            self._httpd.end_connections()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port.

        :raises RuntimeError: if the server is not running.
        """
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: the SDK's ``base_url`` or ``OPENAI_BASE_URL``."""
        return f"http://{self._address[0]}:{self.port}/v1"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self._httpd.connections if self._httpd is not None else 0

    def push(self, *scenarios: Scenario) -> None:
        """Queue scenarios; each chat-completions request takes the next one."""
        with self._lock:
            self._scenarios.extend(scenarios)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def responses(self) -> list[ResponseRecord]:
        """A copy of the response records, one per request, oldest first."""
        with self._lock:
            return list(self._responses)

    def wait_for_responses(self, n: int, timeout: float = 5.0) -> list[ResponseRecord]:
        """Wait until ``n`` responses have finished and return the first ``n``.

        :raises TimeoutError: if they haven't within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while len(self.responses) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.responses)} of {n} requests arrived")
            time.sleep(0.01)
        done = self.responses[:n]
        for record in done:
            if not record.finished.wait(max(deadline - time.monotonic(), 0)):
                raise TimeoutError("a response did not finish")
        return done

    def next_scenario(self) -> Scenario:
        with self._lock:
            if self._scenarios:
                return self._scenarios.popleft()
        return StreamScenario(self.default_tokens, delay_s=self.default_delay_s)

    def record(self, request: RecordedRequest, scenario: Scenario) -> ResponseRecord:
        record = ResponseRecord(request, scenario)
        with self._lock:
            self._requests.append(request)
            self._responses.append(record)
        return record


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C; print the base URL first.

    :param argv: command-line arguments, ``sys.argv[1:]`` when ``None``.
    """
    parser = argparse.ArgumentParser(description="Run a fake OpenAI chat-completions server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--text", help="reply text, split into word tokens")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each token")
    args = parser.parse_args(argv)
    items = re.findall(r"\s*\S+", args.text) if args.text else DEFAULT_TOKENS
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeOpenAI(items, args.delay, args.host, args.port) as fake:
        print(fake.base_url, flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
