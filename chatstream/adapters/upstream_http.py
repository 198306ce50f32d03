"""An HTTP/1.1 transport for the SDK's httpx client, parsed by llhttp.

The openai SDK talks HTTP through an httpx client and takes any httpx
transport (``httpx.Client(transport=...)``, httpx's documented extension
point); auth, base URL, retries, timeouts and status errors stay the SDK's.
This transport carries the requests over pooled keep-alive sockets and
parses the responses with ``httptools`` (bindings to llhttp, the parser of
Node's ``http`` module and of uvicorn).

Why not httpx's own transport: on the openai path each streamed token is one
HTTP chunk, and httpx's stack (httpx → httpcore → h11, pure Python) spends
about 21 µs of CPU per chunk above the cost of the read itself; through this
transport it is about 3 µs (``python -m bench.transport_micro``: a chunk at a
time, as on a stream on pace). In the benchmark the worker's CPU per
delivered token fell from 71 to 60 µs at U1-1000 (pacing off) and from 19.5
to 8 µs at U2 (bench/README, fourth pass). The connection handling here is
written by hand and kept small: one connection per request, a LIFO of idle
connections per origin, no HTTP/2, no pipelining. (urllib3's chunked reader measured as
cheap in the same micro-benchmark, found after this was built: a transport
over urllib3's pool is the alternative with less code of our own.)

What it does not do, and who does instead:

* Proxies: httpx applies ``HTTP(S)_PROXY`` only to its own transport, so
  :func:`env_proxy_for` tells the adapter to keep httpx's when one applies.
* Redirects, cookies, auth, decoding: httpx's client, above any transport.

Errors are httpx's (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``
…), as a transport must raise them: the SDK retries and maps them as it
would its own.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from typing import Any

import httptools
from gevent import getcurrent
from gevent._hub_local import get_hub_if_exists

from .upstream_pool import native_poll

try:  # the SDK's HTTP stack from openai 3.0
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai 1.x and 2.x use httpx
    import httpx  # type: ignore[no-redef]

__all__ = ["LlhttpTransport", "env_proxy_for"]

#: Bytes of a response's status line and headers, at most.
MAX_HEAD_BYTES = 65_536
#: Bytes asked of the socket per read.
READ_BYTES = 65_536
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


def env_proxy_for(url: str) -> bool:
    """Whether ``HTTP(S)_PROXY``/``ALL_PROXY`` (and ``NO_PROXY``) send ``url`` through a proxy."""
    parsed = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parsed.hostname or "")


class _Connection:
    """One socket to one origin."""

    __slots__ = ("sock", "origin", "reused", "timeout")

    def __init__(self, sock: socket.socket, origin: tuple[bytes, bytes, int]) -> None:
        self.sock = sock
        self.origin = origin
        self.reused = False
        self.timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def stale(self, poll: Any) -> bool:
        """The server closed it (or sent something unasked) while it was idle."""
        probe = poll()
        probe.register(self.sock.fileno(), 1)  # POLLIN
        return bool(probe.poll(0))

    def close(self) -> None:
        try:
            # shutdown wakes a read blocked in another thread; close alone does
            # not (under gevent, close wakes it with an error).
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class _ReadTimedOut(Exception):
    """Thrown into a body read by its :func:`_read_timer` (becomes ``httpx.ReadTimeout``)."""


def _read_timer(conn: _Connection) -> Any:
    """A loop timer that bounds each read of ``conn`` by its read timeout, or None.

    A gevent socket with a timeout arms a new :class:`gevent.Timeout` for
    every wait (a Python object, a loop timer, its start and close): on a
    stream on pace, one per token, about 2.5 µs of CPU each (bench/README,
    eighth pass). Instead, for a body read by a greenlet of the socket's hub,
    the socket waits without a timeout and one timer per response, started
    before each read and stopped after it, throws the timeout into the
    reader as ``gevent.Timeout`` itself does. It only runs while a read
    waits, so time spent between reads (handing a token on, a pause) never
    counts. Native sockets (no gevent) keep their own timeout.

    The timer repeats every ``timeout`` and each read restarts it with
    ``again()``, which arms the full ``timeout``. A plain ``start()`` after
    ``stop()`` would not: libev keeps what was left of the timer at
    ``stop()``, so the waits of all reads would add up against one timeout.
    The repeat never fires twice: the read that times out stops the timer
    before it returns.
    """
    timeout = conn.timeout
    hub = getattr(conn.sock, "hub", None)  # a gevent socket's; native sockets have none
    if timeout is None or hub is None or hub is not get_hub_if_exists() or getcurrent() is hub:
        return None
    conn.settimeout(None)
    return hub.loop.timer(timeout, timeout)


class _Response:
    """httptools' callbacks for one response; the parts read so far."""

    __slots__ = (
        "parser",
        "status",
        "reason",
        "headers",
        "head_done",
        "body",
        "complete",
        "keep_alive",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.on_message_begin()

    def on_message_begin(self) -> None:
        # Again after an informational (1xx) response: the real one follows.
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, llhttp's flags are reset
        # for the next one (and the body may complete in this same read).
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.head_done = self.status >= 200

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _BodyStream(httpx.SyncByteStream):
    """The rest of one response's body; gives the connection back when done."""

    def __init__(
        self,
        transport: LlhttpTransport,
        conn: _Connection,
        response: _Response,
        request: httpx.Request,
        close_delimited: bool,
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._response = response
        self._request = request
        self._close_delimited = close_delimited

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        if response.body:
            body, response.body = response.body, []
            yield b"".join(body)
        conn = self._conn
        if conn is None:
            if response.complete:
                return
            raise httpx.StreamClosed()
        recv = conn.sock.recv
        feed = response.parser.feed_data
        timer = _read_timer(conn)
        try:
            yield from self._read(recv, feed, timer)
        finally:
            if timer is not None:
                timer.close()
        self._finish()

    def _read(self, recv: Any, feed: Any, timer: Any) -> Iterator[bytes]:
        response = self._response
        request = self._request
        while not response.complete:
            try:
                if timer is None:
                    data = recv(READ_BYTES)
                else:
                    timer.again(getcurrent().throw, _ReadTimedOut)
                    try:
                        data = recv(READ_BYTES)
                    finally:
                        timer.stop()
            except (TimeoutError, _ReadTimedOut):
                raise httpx.ReadTimeout("timed out reading the response", request=request) from None
            except OSError as exc:
                if self._conn is None:  # close() from another greenlet or thread
                    raise httpx.ReadError("the response was closed", request=request) from None
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            if not data:
                if self._conn is None:  # close() shut the socket down under a read
                    raise httpx.ReadError("the response was closed", request=request)
                if self._close_delimited:
                    response.complete = True
                    break
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=request,
                )
            try:
                feed(data)
            except httptools.HttpParserError as exc:
                raise httpx.RemoteProtocolError(
                    f"invalid HTTP response: {exc}", request=request
                ) from None
            if response.body:
                body, response.body = response.body, []
                yield body[0] if len(body) == 1 else b"".join(body)

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            reusable = self._response.complete and self._response.keep_alive
            self._transport._release(conn, reusable and not self._close_delimited)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport._release(conn, False)


class LlhttpTransport(httpx.BaseTransport):
    """HTTP/1.1 with keep-alive over at most ``max_connections`` sockets.

    :param ssl_context: for ``https`` origins.
    :param max_connections: open at once; more requests wait up to the pool timeout.
    :param max_keepalive: idle connections kept, per origin.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, max_connections: int, max_keepalive: int
    ) -> None:
        self._ssl = ssl_context
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: dict[tuple[bytes, bytes, int], deque[_Connection]] = {}
        self._lock = threading.Lock()
        self._poll = native_poll()
        self._closed = False

    # -- the transport API -------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        if not self._slots.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("no free connection to the model server", request=request)
        try:
            return self._send(request, timeouts)
        except BaseException:
            self._slots.release()
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # -- one request -------------------------------------------------------

    def _send(self, request: httpx.Request, timeouts: dict[str, Any]) -> httpx.Response:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS.get(url.raw_scheme, 80))
        head, body = _serialise(request)
        while True:
            conn = self._checkout(origin, timeouts)
            try:
                return self._exchange(conn, request, head, body, timeouts)
            except _StaleConnection:
                conn.close()  # the server closed it as we reused it: once more, on a new one
            except BaseException:
                conn.close()
                raise

    def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        head: bytes,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        conn.settimeout(timeouts.get("write"))
        try:
            conn.sock.sendall(head + body if len(body) < 65_536 else head)
            if len(body) >= 65_536:
                conn.sock.sendall(body)
        except TimeoutError:
            raise httpx.WriteTimeout("timed out sending the request", request=request) from None
        except OSError as exc:
            if conn.reused:
                raise _StaleConnection() from exc
            raise httpx.WriteError(str(exc), request=request) from exc
        conn.settimeout(timeouts.get("read"))
        response = _Response()
        parser = response.parser
        received = 0
        while not response.head_done:
            try:
                data = conn.sock.recv(READ_BYTES)
            except TimeoutError:
                raise httpx.ReadTimeout(
                    "timed out waiting for the response", request=request
                ) from None
            except OSError as exc:
                if conn.reused and not received:
                    raise _StaleConnection() from exc
                raise httpx.ReadError(str(exc), request=request) from exc
            if not data:
                if conn.reused and not received:
                    raise _StaleConnection()
                raise httpx.RemoteProtocolError(
                    "server disconnected without sending a response", request=request
                )
            received += len(data)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                raise httpx.RemoteProtocolError("unexpected upgrade", request=request) from None
            except httptools.HttpParserError as exc:
                raise httpx.RemoteProtocolError(
                    f"invalid HTTP response: {exc}", request=request
                ) from None
            if not response.head_done and received > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError(
                    f"response headers over {MAX_HEAD_BYTES} bytes", request=request
                )
        status = response.status
        close_delimited = _close_delimited(status, response.headers, request.method)
        stream = _BodyStream(self, conn, response, request, close_delimited)
        if request.method == "HEAD" or status in (204, 304):
            response.complete = True
        return httpx.Response(
            status,
            headers=response.headers,
            stream=stream,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    # -- the pool ----------------------------------------------------------

    def _checkout(self, origin: tuple[bytes, bytes, int], timeouts: dict[str, Any]) -> _Connection:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.stale(self._poll):
                    conn.sock.close()
                    continue
                conn.reused = True
                return conn
        return self._connect(origin, timeouts.get("connect"))

    def _connect(self, origin: tuple[bytes, bytes, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        try:
            sock = _open_socket(hostname, port, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == b"https":
                sock = self._ssl.wrap_socket(sock, server_hostname=hostname)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {hostname}:{port}") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        conn = _Connection(sock, origin)
        conn.timeout = timeout
        return conn

    def _release(self, conn: _Connection, reusable: bool) -> None:
        self._slots.release()
        if reusable:
            with self._lock:
                if not self._closed:
                    idle = self._idle.setdefault(conn.origin, deque())
                    if len(idle) < self.max_keepalive:
                        conn.reused = False
                        idle.append(conn)
                        return
        conn.close()


def _open_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to ``host``; an IP address is not looked up.

    ``socket.create_connection`` asks ``getaddrinfo`` even for an address,
    and under gevent that call goes to a native thread of its resolver pool:
    a hand-off and a GIL round trip per new connection (4.7% of the worker's
    samples at bench U1-100, where every stream opens one).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _StaleConnection(Exception):
    """A reused keep-alive connection failed before any response byte."""


def _serialise(request: httpx.Request) -> tuple[bytes, bytes]:
    """The request's head and body, as bytes."""
    body = request.read()
    url = request.url
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), url.raw_path)]
    chunked = False
    for name, value in request.headers.raw:
        if name.lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        lines.append(name + b": " + value)
    if chunked:  # the body was read whole: send it as one chunk
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n", body


def _close_delimited(status: int, headers: list[tuple[bytes, bytes]], method: str) -> bool:
    """The body ends when the server closes (neither length nor chunked)."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return False
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            return False
    return True
