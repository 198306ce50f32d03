"""Measure the wire bytes per ``newToken`` event, this tree against a baseline commit.

Runs a real gunicorn of each tree on loopback, reads one 1000-token demo
stream from each, and prints the mean bytes per token event and the
difference (issue 10's stream-scoped ids cost ``<tag>.`` per event)::

    .venv/bin/python scripts/event_id_overhead.py 0a52c3a
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import clean_env  # noqa: E402
from tests.support.server import free_port  # noqa: E402
from tests.support.server import wait_ready  # noqa: E402


def bytes_per_token(tree: Path, tokens: int) -> tuple[float, bytes]:
    """Mean bytes per token event of one stream served by ``tree``, and a sample frame."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}"]
            + ["wsgi:app"],
            cwd=tree,
            env=clean_env({"CHATSTREAM_ADAPTER": "demo", "WEB_CONCURRENCY": "1"}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if not wait_ready(proc, base + "/healthz", lambda: "", "gunicorn", 30):
                raise RuntimeError(f"gunicorn in {tree} did not start")
            with httpx.Client(base_url=base, timeout=60) as client:
                body = {"prompt": "x", "options": {"tokens": tokens, "delay_ms": 0}}
                url = client.post("/api/streaming", json=body).json()["stream_url"]
                stream = client.get(url).content
        finally:
            proc.terminate()
            proc.wait()
    frames = [f + b"\n\n" for f in stream.split(b"\n\n") if b"event: newToken" in f]
    assert len(frames) == tokens, len(frames)
    return sum(map(len, frames)) / tokens, frames[tokens // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", help="git revision to compare with (e.g. 0a52c3a)")
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        old, old_frame = bytes_per_token(Path(tmp), args.tokens)
    new, new_frame = bytes_per_token(ROOT, args.tokens)
    print(f"{args.baseline}: {old:.2f} bytes per token event, e.g. {old_frame!r}")
    print(f"this tree: {new:.2f} bytes per token event, e.g. {new_frame!r}")
    print(f"overhead: {new - old:+.2f} bytes per token event ({(new - old) / old:+.1%})")


if __name__ == "__main__":
    main()
