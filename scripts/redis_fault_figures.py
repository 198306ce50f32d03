"""Issue-9 figures at full scale with the default settings (beat 1 s,
liveness 5 s, detach grace 30 s, outage budget 30 s).

Usage, from the tree to measure (for an older checkout, copy this script,
``tests/faults/test_redis_faults.py`` and ``tests/support/redis_server.py``
into it first)::

    .venv/bin/python scripts/redis_fault_figures.py reader_stall
    .venv/bin/python scripts/redis_fault_figures.py redis_stall SECONDS [TOKENS]

``reader_stall``: 100 streams on instance A, each read on instance B; when the
streams are 32 s old (past the 30 s grace) B's worker is stopped 4 s.
``redis_stall``: 100 streams on A, 50 read on A and 50 on B; Redis is stopped
SECONDS (TOKENS per stream, 50 ms apart: keep them running past the stall).
Prints how each reader's stream ended.
"""

from __future__ import annotations

import sys
import tempfile
import time

sys.path.insert(0, ".")

from tests.faults.test_redis_faults import Readers  # noqa: E402
from tests.faults.test_redis_faults import on  # noqa: E402
from tests.faults.test_redis_faults import pause  # noqa: E402
from tests.faults.test_redis_faults import start_streams  # noqa: E402
from tests.faults.test_redis_faults import tally  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server import GunicornServer  # noqa: E402


def main(which: str, stall_s: float = 10.0, tokens: int = 400) -> None:
    logs = tempfile.mkdtemp(prefix="chatstream-fault-figures-")
    with RedisServer() as redis_server:
        env = {"CHATSTREAM_ADAPTER": "demo", "CHATSTREAM_REDIS_URL": redis_server.url}
        with GunicornServer(env, log_dir=logs) as a, GunicornServer(env, log_dir=logs) as b:
            if which == "reader_stall":
                created = time.monotonic()
                urls = start_streams(a, 100, tokens=900, delay_ms=50)  # ~45 s
                with Readers([on(b, u, a) for u in urls]) as readers:
                    readers.wait_attached()
                    time.sleep(max(0.0, created + 32 - time.monotonic()))
                    (worker,) = b.worker_pids()
                    pause(worker, 4.0)
                    readings = readers.finish(timeout=120)
                print(f"B stalled 4 s, 100 readers on B, streams 32 s old: {tally(readings)}")
            else:
                urls = start_streams(a, 100, tokens=tokens, delay_ms=50)
                half = len(urls) // 2
                with Readers(urls[:half] + [on(b, u, a) for u in urls[half:]]) as readers:
                    readers.wait_attached()
                    redis_server.pause(stall_s)
                    readings = readers.finish(timeout=120)
                print(
                    f"Redis stopped {stall_s:g} s, 100 streams: read on A "
                    f"{tally(readings[:half])}, read on B {tally(readings[half:])}"
                )
    print("logs:", logs)


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:3]), *(int(a) for a in sys.argv[3:4]))
