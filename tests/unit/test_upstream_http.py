"""The llhttp transport against a scripted raw-socket server: framing, reuse, faults.

The openai adapter's own tests (test_openai_adapter.py, the live and fault
suites) run it against the fake OpenAI server; these pin what that server
never sends: other framings, informational responses, hostile heads, idle
connections the server closed, and the pool's bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest

from chatstream.adapters.upstream_http import MAX_HEAD_BYTES
from chatstream.adapters.upstream_http import LlhttpTransport
from chatstream.adapters.upstream_http import env_proxy_for
from chatstream.adapters.upstream_pool import create_ssl_context

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

#: A script answers one request: gets the connection, the request bytes and
#: the request's number on that connection; returns False to close it.
Script = Callable[[socket.socket, bytes, int], bool]


class RawServer:
    """Accepts connections on loopback and answers each request with a script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        number = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                number += 1
                try:
                    if not self.script(conn, request, number):
                        return
                except OSError:
                    return

    def close_idle(self) -> None:
        for conn in self.open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.close_idle()


@pytest.fixture
def serve():
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(max_connections: int = 4, max_keepalive: int = 4, **timeouts: float) -> httpx.Client:
    transport = LlhttpTransport(create_ssl_context(), max_connections, max_keepalive)
    return httpx.Client(transport=transport, timeout=httpx.Timeout(5.0, **timeouts))


def send(conn: socket.socket, data: bytes) -> bool:
    conn.sendall(data)
    return True


def test_the_request_goes_out_as_httpx_built_it(serve):
    server = serve(lambda conn, req, n: send(conn, OK))
    with client() as http:
        response = http.post(server.url + "/v1/chat?x=1", json={"a": "é"}, headers={"X-T": "1"})
    assert response.status_code == 200 and response.text == "ok"
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat?x=1 HTTP/1.1"
    assert b"x-t: 1" in [line.lower() for line in lines]
    assert body == '{"a":"é"}'.encode()


def test_keep_alive_connections_are_reused(serve):
    server = serve(lambda conn, req, n: send(conn, OK))
    with client() as http:
        assert [http.get(server.url).text for _ in range(3)] == ["ok"] * 3
    assert server.connections == 1


def test_a_chunked_body_arrives_piece_by_piece(serve):
    gate = threading.Event()

    def script(conn, req, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        gate.wait(5)
        conn.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
        return True

    server = serve(script)
    with client() as http, http.stream("GET", server.url) as response:
        pieces = response.iter_raw()
        assert next(pieces) == b"first"  # before the rest was even sent
        gate.set()
        assert b"".join(pieces) == b"second"
        assert http.get(server.url).status_code == 200
    assert server.connections == 1


def test_a_body_ended_by_close_is_read_whole_and_not_reused(serve):
    def script(conn, req, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        return False

    server = serve(script)
    with client() as http:
        assert http.get(server.url).text == "until the end"
        assert http.get(server.url).text == "until the end"
    assert server.connections == 2


def test_connection_close_is_honoured(serve):
    server = serve(
        lambda conn, req, n: send(
            conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
        )
    )
    with client() as http:
        assert [http.get(server.url).text for _ in range(2)] == ["x", "x"]
    assert server.connections == 2


def test_an_informational_response_is_skipped(serve):
    server = serve(lambda conn, req, n: send(conn, b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    with client() as http:
        response = http.get(server.url)
        assert (response.status_code, response.text) == (200, "ok")
        assert http.get(server.url).text == "ok"


def test_a_body_cut_short_is_a_protocol_error(serve):
    server = serve(
        lambda conn, req, n: (
            send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") and False
        )
    )
    with client() as http, pytest.raises(httpx.RemoteProtocolError, match="complete message"):
        http.get(server.url)


def test_a_chunked_body_cut_short_is_a_protocol_error(serve):
    server = serve(
        lambda conn, req, n: (
            send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            and False
        )
    )
    with client() as http, http.stream("GET", server.url) as response:
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()


def test_a_response_that_is_not_http_is_a_protocol_error(serve):
    server = serve(lambda conn, req, n: send(conn, b"SSH-2.0-OpenSSH\r\n\r\n") and False)
    with client() as http, pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP"):
        http.get(server.url)


def test_endless_headers_are_cut_at_the_bound(serve):
    def script(conn, req, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(MAX_HEAD_BYTES // len(filler) + 10):
            conn.sendall(filler)
        time.sleep(1)
        return False

    server = serve(script)
    with client() as http, pytest.raises(httpx.RemoteProtocolError, match="headers over"):
        http.get(server.url)


def test_an_idle_connection_the_server_closed_is_replaced(serve):
    server = serve(lambda conn, req, n: send(conn, OK))
    with client() as http:
        assert http.get(server.url).text == "ok"
        server.close_idle()
        time.sleep(0.05)
        assert http.get(server.url).text == "ok"
    assert server.connections == 2


def test_a_reused_connection_closed_as_the_request_arrives_is_retried_once(serve):
    # The server takes the request on the kept-alive connection and closes
    # without answering (its keep-alive timeout raced the request).
    server = serve(lambda conn, req, n: send(conn, OK) if n == 1 else False)
    with client() as http:
        assert http.get(server.url).text == "ok"
        assert http.get(server.url).text == "ok"
    assert server.connections == 2


def test_a_new_connection_closed_without_answer_is_an_error(serve):
    server = serve(lambda conn, req, n: False)
    with client() as http, pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        http.get(server.url)
    assert server.connections == 1  # a fresh connection is not retried


def test_a_silent_server_times_out(serve):
    server = serve(lambda conn, req, n: time.sleep(2) or False)
    with client(read=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.get(server.url)


def test_a_refused_connection_is_a_connect_error():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with client() as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/")


def test_requests_beyond_the_pool_wait_then_time_out(serve):
    server = serve(lambda conn, req, n: send(conn, OK))
    with client(max_connections=1, pool=0.2) as http:
        with http.stream("GET", server.url):
            with pytest.raises(httpx.PoolTimeout):
                http.get(server.url)
        assert http.get(server.url).text == "ok"  # the slot came back


@contextlib.contextmanager
def closed_under_a_read(serve, reply: bytes, first: bytes):
    """The body's iterator once ``first`` was read and the server went
    silent; ``response.close()`` comes from another thread 0.1 s later."""

    def script(conn, req, n):
        conn.sendall(reply)
        time.sleep(3)
        return False

    server = serve(script)
    with client() as http, http.stream("GET", server.url) as response:
        pieces = response.iter_raw()
        assert next(pieces) == first
        threading.Timer(0.1, response.close).start()
        yield pieces


def test_close_from_another_thread_ends_a_blocked_read(serve):
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
    with closed_under_a_read(serve, reply, b"a") as pieces:
        started = time.monotonic()
        with pytest.raises(httpx.HTTPError):
            next(pieces)
        assert time.monotonic() - started < 2


def test_environment_proxies_are_recognised(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert not env_proxy_for("https://api.example.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert env_proxy_for("https://api.example.com/v1")
    assert not env_proxy_for("http://api.example.com/v1")
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert not env_proxy_for("https://api.example.com/v1")


@pytest.fixture
def self_signed(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key: ``(cert, key)`` paths."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(self_signed):
    """A TLS server with a self-signed certificate for 127.0.0.1, answering OK."""
    import ssl

    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    while b"\r\n\r\n" not in conn.recv(65536):
                        pass
                    conn.sendall(OK)
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], cert
    stop.set()
    listener.close()


def test_https_is_verified_against_the_context(tls_server):
    import ssl

    port, cert = tls_server
    trusting = LlhttpTransport(ssl.create_default_context(cafile=str(cert)), 2, 2)
    with httpx.Client(transport=trusting) as http:
        assert http.get(f"https://127.0.0.1:{port}/").text == "ok"
    with client() as http, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        http.get(f"https://127.0.0.1:{port}/")


def test_close_under_a_read_of_a_body_ended_by_close_is_not_its_end(serve):
    # Shutting the socket down makes the blocked read return b"" (an EOF):
    # for a close-delimited body that must not read as a complete answer.
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst"
    with closed_under_a_read(serve, reply, b"first") as pieces:
        with pytest.raises(httpx.ReadError, match="closed"):
            next(pieces)


def test_an_ipv6_loopback_origin_is_reached_without_a_lookup(monkeypatch):
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(OK)

    threading.Thread(target=answer, daemon=True).start()

    def no_lookup(*args, **kwargs):
        raise AssertionError("getaddrinfo called for an IP address")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with client() as http:
        assert http.get(f"http://[::1]:{listener.getsockname()[1]}/").text == "ok"
    listener.close()


def run_script(script: str, *args: str) -> None:
    """Run ``script`` in a new interpreter (where it may monkey-patch); it prints ``ok``."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def record_read_timers() -> list[object]:
    """Record what each body's :func:`_read_timer` returns (for the gevent scripts)."""
    from chatstream.adapters import upstream_http

    timers: list[object] = []
    read_timer = upstream_http._read_timer
    upstream_http._read_timer = lambda conn: timers.append(read_timer(conn)) or timers[-1]
    return timers


def seconds_until_read_timeout(pieces) -> float:
    """How long ``next(pieces)`` took to raise ``httpx.ReadTimeout`` (it must)."""
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        next(pieces)
    return time.monotonic() - started


BODY_READS_UNDER_GEVENT = r"""
from gevent import monkey
monkey.patch_all()
import socket, time
import gevent
from tests.unit.test_upstream_http import (
    RawServer, client, httpx, record_read_timers, seconds_until_read_timeout,
)

timers = record_read_timers()

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

def paced(conn, req, n):  # three chunks 0.2 s apart, then the end
    conn.sendall(HEAD)
    for piece in (b"a", b"b", b"c"):
        conn.sendall(b"1\r\n" + piece + b"\r\n")
        time.sleep(0.2)
    conn.sendall(b"0\r\n\r\n")
    return True

def trickles(conn, req, n):  # ten chunks 0.1 s apart: 1 s of waits, each well in time
    conn.sendall(HEAD)
    for _ in range(10):
        time.sleep(0.1)
        conn.sendall(b"1\r\nx\r\n")
    conn.sendall(b"0\r\n\r\n")
    return True

def stalls(conn, req, n):  # one chunk, then silence
    conn.sendall(HEAD + b"1\r\na\r\n")
    time.sleep(3)
    return False

server = RawServer(paced)
with client(read=0.5) as http:
    for _ in range(2):
        # The reader dawdles 1 s after each chunk, twice the read timeout:
        # only a read's own wait counts.
        with http.stream("GET", server.url) as response:
            pieces = []
            for piece in response.iter_raw():
                pieces.append(piece)
                gevent.sleep(1.0)
            assert b"".join(pieces) == b"abc", pieces
assert server.connections == 1, server.connections  # kept alive and reused

server = RawServer(trickles)
with client(read=0.5) as http:
    # Each read gets the whole read timeout: the waits do not add up.
    assert http.get(server.url).content == b"x" * 10

server = RawServer(stalls)
with client(read=0.3) as http, http.stream("GET", server.url) as response:
    pieces = response.iter_raw()
    assert next(pieces) == b"a"
    waited = seconds_until_read_timeout(pieces)
    assert 0.25 < waited < 2, waited

with client(read=5) as http, http.stream("GET", server.url) as response:
    pieces = response.iter_raw()
    assert next(pieces) == b"a"
    gevent.spawn_later(0.1, response.close)
    started = time.monotonic()
    try:
        next(pieces)
    except httpx.ReadError:
        assert time.monotonic() - started < 2
assert len(timers) == 5 and all(timer is not None for timer in timers), timers
print("ok")
"""


def test_body_reads_under_gevent_time_out_per_read_and_close_from_another_greenlet():
    """Under gevent a body read is bounded by one loop timer per response
    (not a ``gevent.Timeout`` per read): a silent upstream still times out
    after the read timeout, time the reader spends between reads does not
    count, the connection is reused after, and a close from another greenlet
    ends a waiting read."""
    run_script(BODY_READS_UNDER_GEVENT)


TLS_BODY_READS_UNDER_GEVENT = r"""
from gevent import monkey
monkey.patch_all()
import socket, ssl, sys, threading, time
import gevent
from chatstream.adapters import upstream_http
from tests.unit.test_upstream_http import httpx, record_read_timers, seconds_until_read_timeout

cert, key = sys.argv[1], sys.argv[2]
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_context.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]

def serve():
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=answer, args=(raw,), daemon=True).start()

def answer(raw):
    with server_context.wrap_socket(raw, server_side=True) as conn:
        while b"\r\n\r\n" not in conn.recv(65536):
            pass
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        time.sleep(0.2)
        conn.sendall(b"1\r\nb\r\n")
        time.sleep(3)  # then silence

threading.Thread(target=serve, daemon=True).start()
timers = record_read_timers()
transport = upstream_http.LlhttpTransport(ssl.create_default_context(cafile=cert), 2, 2)
with httpx.Client(transport=transport, timeout=httpx.Timeout(5.0, read=0.5)) as http:
    with http.stream("GET", f"https://127.0.0.1:{port}/") as response:
        pieces = response.iter_raw()
        assert next(pieces) == b"a"
        gevent.sleep(1.0)  # between reads: does not count
        assert next(pieces) == b"b"
        waited = seconds_until_read_timeout(pieces)
        assert 0.4 < waited < 2.5, waited
assert len(timers) == 1 and timers[0] is not None, timers
print("ok")
"""


def test_tls_body_reads_under_gevent_time_out_per_read(self_signed):
    """The same per-read timeout over TLS (gevent's SSLSocket waits its own way)."""
    cert, key = self_signed
    run_script(TLS_BODY_READS_UNDER_GEVENT, str(cert), str(key))
