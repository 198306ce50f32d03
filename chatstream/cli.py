"""The ``chatstream`` command: ``serve``, ``check`` and ``ask``.

* ``chatstream serve [--host H] [--port P] [--workers N]`` runs gunicorn with
  the package's settings (:mod:`chatstream.gunicorn_conf`) on the standalone
  app (:mod:`chatstream.wsgi`), reading the same environment as the
  Procfile. More than one worker needs ``CHATSTREAM_REDIS_URL``: streams live
  in one process otherwise, so ``serve`` refuses rather than serve 404s.
* ``chatstream check`` validates the environment and prints the effective
  settings, secrets masked; exit 1 names the first bad variable.
* ``chatstream ask "prompt" [--url U] [--model M] [--token T]`` streams an
  answer from a running chatstream to the terminal with httpx-sse. After a
  cut connection it reconnects with ``Last-Event-ID`` and resumes where it
  stopped, as a browser's ``EventSource`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import TextIO
from urllib.parse import urljoin
from urllib.parse import urlsplit

from . import __version__
from . import appconfig
from . import config
from .errors import ConfigError

#: The gunicorn settings module and the app ``serve`` runs.
GUNICORN_CONFIG = "python:chatstream.gunicorn_conf"
WSGI_APP = "chatstream.wsgi:app"
#: Exit codes: 1 a setting or an answer failed, 2 a usage error (argparse's).
FAILED, USAGE = 1, 2
#: ``ask`` gives up after this many reconnects in a row without a new event.
MAX_RECONNECTS = 5


def effective_settings(environ: Mapping[str, str] | None = None) -> appconfig.Settings:
    """The settings the app would run with, checked, adapter and store included.

    :raises ConfigError: naming the first bad variable.
    """
    from .adapters.base import load_factory

    values = appconfig.prepare(_environment_config(environ))
    load_factory(values["ADAPTER"], values)
    if values["REDIS_URL"]:
        try:
            import redis  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError(
                "CHATSTREAM_REDIS_URL is set but the redis package is not installed: "
                "pip install 'chatstream[redis]'"
            ) from None
    return values


def _environment_config(environ: Mapping[str, str] | None) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    config.load_environment(layer, environ)
    return layer


def _workers_problem(workers: int, environ: Mapping[str, str]) -> str | None:
    if workers > 1 and not environ.get("CHATSTREAM_REDIS_URL"):
        return (
            f"{workers} workers need CHATSTREAM_REDIS_URL: without Redis, streams live in "
            "one process and a GET reaching another worker would be a 404."
        )
    return None


# -- serve ------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """Check the settings, then become gunicorn with the package's settings."""
    environ = dict(os.environ)
    problem = _workers_problem(args.workers, environ)
    if problem:
        print(f"chatstream serve: {problem}", file=sys.stderr)
        return USAGE
    try:
        effective_settings(environ)
    except ConfigError as exc:
        print(f"chatstream: configuration error: {exc.message}", file=sys.stderr)
        return FAILED
    environ.update(HOST=args.host, PORT=str(args.port), WEB_CONCURRENCY=str(args.workers))
    argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, WSGI_APP]
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: gunicorn's master gets the signals (SIGTERM drains).
    os.execve(sys.executable, argv, environ)
    return 0  # not reached


# -- check ------------------------------------------------------------------------------


def check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the effective settings (secrets masked), or the first problem."""
    out = out or sys.stdout
    environ = dict(os.environ)
    try:
        values = effective_settings(environ)
    except ConfigError as exc:
        print(f"chatstream: configuration error: {exc.message}", file=sys.stderr)
        return FAILED
    workers = int(environ.get("WEB_CONCURRENCY", "1") or "1")
    problem = _workers_problem(workers, environ)
    if problem:
        print(f"chatstream: WEB_CONCURRENCY: {problem}", file=sys.stderr)
        return FAILED
    print(f"chatstream {__version__}: settings OK", file=out)
    for name, value in appconfig.masked(values).items():
        print(f"{name}={value}", file=out)
    print(f"WEB_CONCURRENCY={workers}", file=out)
    return 0


# -- ask --------------------------------------------------------------------------------


def api_url(url: str) -> str:
    """The streaming endpoint: ``url`` itself if it names one, else ``<url>/api/streaming``."""
    if urlsplit(url).path.rstrip("/").endswith("/streaming"):
        return url.rstrip("/")
    return url.rstrip("/") + "/api/streaming"


def _error_text(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except Exception:
        return f"HTTP {response.status_code}"


def ask(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Submit the prompt, then print the answer's tokens as they arrive."""
    out = out or sys.stdout
    import httpx

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    body: dict[str, Any] = {"prompt": args.prompt}
    if args.model:
        body["model"] = args.model
    endpoint = api_url(args.url)
    timeout = httpx.Timeout(args.timeout, connect=10.0)
    with httpx.Client(headers=headers, timeout=timeout) as client:
        try:
            response = client.post(endpoint, json=body)
        except httpx.TransportError as exc:
            print(f"chatstream ask: cannot reach {endpoint}: {exc}", file=sys.stderr)
            return FAILED
        if response.status_code != 202:
            print(f"chatstream ask: {_error_text(response)}", file=sys.stderr)
            return FAILED
        stream_url = urljoin(endpoint, response.json()["stream_url"])
        return _follow(client, stream_url, out)


def _follow(client: Any, stream_url: str, out: TextIO) -> int:
    """Read the stream to its end, reconnecting after a cut with ``Last-Event-ID``."""
    import httpx
    from httpx_sse import connect_sse

    last_id = ""
    retry_s = 1.0
    failures = 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            with connect_sse(client, "GET", stream_url, headers=headers) as source:
                status = source.response.status_code
                if status == 204:  # everything was delivered before the cut
                    print(file=out)
                    return 0
                if status != 200:
                    source.response.read()
                    print(f"chatstream ask: {_error_text(source.response)}", file=sys.stderr)
                    return FAILED
                for event in source.iter_sse():
                    if event.retry is not None:
                        retry_s = event.retry / 1000
                    if not event.event or not event.data:
                        continue
                    data = json.loads(event.data)
                    if event.id:
                        last_id, failures = event.id, 0
                    if event.event == "newToken":
                        out.write(data.get("token", ""))
                        out.flush()
                    elif event.event == "end":
                        print(file=out)
                        reason = data.get("finish_reason")
                        if reason != "stop":
                            print(f"chatstream ask: finished: {reason}", file=sys.stderr)
                        return 0
                    elif event.event == "error" and not data.get("reconnect"):
                        print(file=out)
                        print(
                            f"chatstream ask: {data.get('code')}: {data.get('message')}",
                            file=sys.stderr,
                        )
                        return FAILED
                    elif event.event == "error":
                        break  # the server restarts: reconnect and resume
        except httpx.TransportError:
            pass  # a cut: resume below
        failures += 1
        if failures > MAX_RECONNECTS:
            print(
                f"\nchatstream ask: cut {failures} times in a row without a new event; giving up",
                file=sys.stderr,
            )
            return FAILED
        time.sleep(retry_s)


# -- main -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="chatstream", description="Stream LLM answers over Server-Sent Events."
    )
    root.add_argument("--version", action="version", version=f"chatstream {__version__}")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="serve the chat page and API with gunicorn")
    run.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="address to bind (env HOST; default 127.0.0.1)",
    )
    run.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="port (env PORT; default 8000)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="gunicorn gevent workers (env WEB_CONCURRENCY; >1 needs Redis)",
    )
    run.set_defaults(handler=serve)

    show = commands.add_parser("check", help="validate the environment, print the settings")
    show.set_defaults(handler=check)

    question = commands.add_parser("ask", help="stream an answer from a running chatstream")
    question.add_argument("prompt")
    question.add_argument(
        "--url",
        default=os.environ.get("CHATSTREAM_URL", "http://127.0.0.1:8000"),
        help="the chatstream (env CHATSTREAM_URL; or its .../streaming URL)",
    )
    question.add_argument("--model", help="one of the server's CHATSTREAM_MODELS")
    question.add_argument(
        "--token",
        default=os.environ.get("CHATSTREAM_API_TOKEN"),
        help="bearer token (env CHATSTREAM_API_TOKEN)",
    )
    question.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds without a byte (heartbeats included) before reconnecting",
    )
    question.set_defaults(handler=ask)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chatstream`` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `chatstream ask ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
