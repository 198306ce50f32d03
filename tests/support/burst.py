"""An arrival burst: ``python -m tests.support.burst PORT N`` opens N loopback
connections at once, each sends one prompt ``POST`` and reads its whole answer.

It runs in its own process (its own core and GIL), as many clients would. It
prints one JSON line: when the burst started and ended (``time.monotonic()``,
comparable with the test's own clock), and how many answers were ``202``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

BODY = json.dumps({"prompt": "burst", "options": {"tokens": 1, "delay_ms": 0}}).encode()
REQUEST = (
    b"POST /api/streaming HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


async def one(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()


async def burst(port: int, n: int) -> dict[str, float | int]:
    started = time.monotonic()
    answers = await asyncio.gather(*(one(port) for _ in range(n)), return_exceptions=True)
    ended = time.monotonic()
    accepted = sum(1 for a in answers if isinstance(a, bytes) and a.startswith(b"HTTP/1.1 202"))
    return {"started": started, "ended": ended, "accepted": accepted, "n": n}


def main() -> None:
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100 and (hard == resource.RLIM_INFINITY or hard >= n + 100):
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))
    print(json.dumps(asyncio.run(burst(port, n))), flush=True)


if __name__ == "__main__":
    main()
