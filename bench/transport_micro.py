"""CPU per streamed chunk when each chunk arrives on its own (a stream on pace).

``python -m bench.transport_micro`` serves one chunked response from a thread
of this process; the server sends the next SSE chunk only when the reader
asks (a semaphore), so every read finds exactly one chunk, as when a worker
keeps up with 50 tokens/s streams. It measures the reading thread's CPU per
chunk through:

* ``httpx``: an httpx client over httpx's own transport (httpcore, h11), as
  the SDK uses by default (``CHATSTREAM_OPENAI_HTTP=httpx``);
* ``llhttp``: an httpx client over
  :class:`chatstream.adapters.upstream_http.LlhttpTransport` (the default);
* ``urllib3``: urllib3's pool and chunked reader, for reference;
* ``socket``: a buffered ``readline``/``read`` loop on the bare socket: the
  floor (the hand-off to the server thread and the syscalls).

No gevent, one reading thread; the figures include the hand-off, the same
for every path, so compare differences, not ratios.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator

from chatstream.adapters.upstream_http import LlhttpTransport
from chatstream.adapters.upstream_pool import create_ssl_context

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

PAYLOAD = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"17 "},"finish_reason":null}]}\n\n'
)
CHUNK = b"%x\r\n%s\r\n" % (len(PAYLOAD), PAYLOAD)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _serve(listener: socket.socket, gate: threading.Semaphore, chunks: int) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(HEAD)
        for _ in range(chunks):
            gate.acquire()
            conn.sendall(CHUNK)
        conn.sendall(b"0\r\n\r\n")
        time.sleep(0.2)


def _httpx(url: str, transport: httpx.BaseTransport | None) -> Iterator[bytes]:
    with httpx.Client(transport=transport, timeout=10) as client:
        with client.stream("POST", url, content=b"{}") as response:
            yield from response.iter_raw()


def _urllib3(url: str) -> Iterator[bytes]:
    import urllib3

    with urllib3.PoolManager(timeout=10) as pool:
        response = pool.request("POST", url, body=b"{}", preload_content=False)
        yield from response.stream(None, decode_content=False)
        response.release_conn()


def _socket(url: str) -> Iterator[bytes]:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        stream = sock.makefile("rb")
        while stream.readline() != b"\r\n":
            pass
        while size := int(stream.readline(), 16):
            yield stream.read(size)
            stream.read(2)


PATHS: dict[str, Callable[[str], Iterator[bytes]]] = {
    "httpx": lambda url: _httpx(url, None),
    "llhttp": lambda url: _httpx(url, LlhttpTransport(create_ssl_context(), 4, 4)),
    "urllib3": _urllib3,
    "socket": _socket,
}


def measure(path: str, chunks: int) -> float:
    """CPU µs of the reading thread per chunk on ``path``."""
    listener = socket.create_server(("127.0.0.1", 0))
    gate = threading.Semaphore(0)
    server = threading.Thread(target=_serve, args=(listener, gate, chunks + 2), daemon=True)
    server.start()
    body = PATHS[path](f"http://127.0.0.1:{listener.getsockname()[1]}/")
    for _ in range(2):  # warm: connection, first reads
        gate.release()
        assert next(body) == PAYLOAD
    start = time.thread_time()
    for _ in range(chunks):
        gate.release()
        assert next(body) == PAYLOAD
    cpu = time.thread_time() - start
    body.close()
    listener.close()
    server.join(5)
    return cpu / chunks * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    print("| path | CPU µs per chunk (runs) |")
    print("|---|---:|")
    for path in PATHS:
        figures = sorted(measure(path, args.chunks) for _ in range(args.runs))
        runs = " · ".join(f"{f:.1f}" for f in figures)
        print(f"| {path} | {figures[len(figures) // 2]:.1f} ({runs}) |", flush=True)


if __name__ == "__main__":
    main()
