"""Count Redis connections of one gunicorn worker with 1 and with N open streams.

Usage: ``.venv/bin/python scripts/redis_connections.py [N ...]`` (default 1 1000).
Starts its own redis-server and gunicorn on loopback, opens N streams whose
demo model stays silent (heartbeats only), each read by one SSE client, and
prints the number of Redis client connections besides this script's own.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile

sys.path.insert(0, ".")

from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server import GunicornServer  # noqa: E402

BODY = json.dumps({"prompt": "x", "options": {"tokens": 2, "delay_ms": 10_000}}).encode()


async def open_stream(port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/streaming HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    url = json.loads(await reader.readexactly(length))["stream_url"]
    writer.write(f"GET {url} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await reader.readuntil(b"newToken")  # the stream is open and flowing
    return writer


async def measure(port: int, count: int, redis_server: RedisServer) -> int:
    writers = await asyncio.gather(*(open_stream(port) for _ in range(count)))
    client = redis_server.client()
    connections = len(client.client_list()) - 1
    client.close()
    for writer in writers:
        writer.close()
    return connections


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [1, 1000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with RedisServer() as redis_server:
        env = {
            "CHATSTREAM_REDIS_URL": redis_server.url,
            "CHATSTREAM_ADAPTER": "demo",
            "CHATSTREAM_MAX_STREAMS": str(max(counts) * 2),
            "CHATSTREAM_RATE_LIMIT": "off",
            "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "0",
        }
        with GunicornServer(env, log_dir=tempfile.mkdtemp()) as server:
            print("| open streams | Redis connections (1 gevent worker) |")
            print("| ---: | ---: |")
            for count in counts:
                print(f"| {count} | {asyncio.run(measure(server.port, count, redis_server))} |")


if __name__ == "__main__":
    main()
