"""CPU per prompt POST and per stream GET, through the whole Flask app, in one process.

``python -m bench.request_micro`` builds the app as ``wsgi.py`` does (demo
model, gevent-patched, the worker's collector settings), then times a chat's
two requests by calling the WSGI app directly: ``POST /api/streaming``
(JSON answer), then ``GET`` of its ``stream_url`` to the end (10 tokens, no
delay; the generation runs in between and is not counted). No HTTP parsing
and no sockets: the figure is the app's own cost per request, what gunicorn
adds is the same for every Flask peer.

Two cases: ``fresh`` sends no cookie (the benchmark's load generator, a
script); ``browser`` sends the session cookie back, as a browser does, so it
holds :data:`~chatstream.session_streams.RECENT` stream ids after a few chats
and every POST and GET opens, and saves, it.

Each case runs ``--rounds`` rounds of ``--chats`` chats, alternating; the
table gives each round's figure and their minimum (the least disturbed).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

BODY = json.dumps({"prompt": "hello", "options": {"tokens": 10, "delay_ms": 0}}).encode()
#: As the benchmark targets run the server (every user is 127.0.0.1).
ENV = {
    "CHATSTREAM_ADAPTER": "demo",
    "CHATSTREAM_RATE_LIMIT": "off",
    "CHATSTREAM_MAX_STREAMS": "10000",
    "CHATSTREAM_MAX_STREAMS_PER_CLIENT": "0",
    "CHATSTREAM_ALLOWED_HOSTS": "localhost",
    "SECRET_KEY": "request-micro",
    "CHATSTREAM_LOG_FORMAT": "json",
}


def _app() -> Callable[..., Any]:
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    from chatstream import gunicorn_conf
    from chatstream.wsgi import app

    gunicorn_conf._tune_gc()  # the worker's collector settings
    return app


class Chats:
    """Runs chats against ``app``; adds the CPU of each request to ``post_s``/``get_s``."""

    def __init__(self, app: Callable[..., Any], keep_cookie: bool) -> None:
        self.app = app
        self.keep_cookie = keep_cookie
        self.cookie = ""
        self.post_s = 0.0
        self.get_s = 0.0

    def _call(self, environ: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
            seen["status"], seen["headers"] = status, headers

        body = self.app(environ, start_response)
        try:
            data = b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        if not seen["status"].startswith(("200", "202")):
            raise RuntimeError(f"{seen['status']}: {data[:200]!r}")
        if self.keep_cookie:
            for name, value in seen["headers"]:
                if name.lower() == "set-cookie":
                    self.cookie = value.split(";", 1)[0]
        return seen["headers"], data

    def _environ(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = kwargs.pop("headers", {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        return EnvironBuilder(path=path, method=method, headers=headers, **kwargs).get_environ()

    def chat(self) -> None:
        environ = self._environ(
            "POST",
            "/api/streaming",
            data=BODY,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        started = time.process_time()
        _, data = self._call(environ)
        self.post_s += time.process_time() - started
        url = json.loads(data)["stream_url"]
        gevent.sleep(0)  # the generation runs here, uncounted
        environ = self._environ("GET", url, headers={"Accept": "text/event-stream"})
        started = time.process_time()
        _, data = self._call(environ)
        self.get_s += time.process_time() - started
        if b"event: end" not in data:
            raise RuntimeError(f"no end event: {data[-200:]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import logging

    app = _app()
    logging.getLogger("chatstream").handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    cases = {"fresh": Chats(app, keep_cookie=False), "browser": Chats(app, keep_cookie=True)}
    for chats in cases.values():  # warm up; the browser's cookie fills up
        for _ in range(300):
            chats.chat()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, chats in cases.items():
            chats.post_s = chats.get_s = 0.0
            for _ in range(args.chats):
                chats.chat()
            figures[name].append((chats.post_s / args.chats, chats.get_s / args.chats))
    print(
        f"CPU per request, µs ({args.rounds} rounds of {args.chats} chats; min, then each round)\n"
    )
    print("| case | POST | GET | POST + GET |")
    print("|---|---:|---:|---:|")
    for name, rounds in figures.items():
        sums = [p + g for p, g in rounds]
        best = min(range(len(rounds)), key=sums.__getitem__)
        each = " · ".join(f"{s * 1e6:.0f}" for s in sums)
        post, get = rounds[best]
        print(f"| {name} | {post * 1e6:.0f} | {get * 1e6:.0f} | {sums[best] * 1e6:.0f} ({each}) |")


if __name__ == "__main__":
    main()
