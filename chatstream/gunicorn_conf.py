"""gunicorn settings for chatstream: ``gunicorn -c python:chatstream.gunicorn_conf``.

Installed with the package, so a server started outside the checkout (``chatstream
serve``, or gunicorn by hand) keeps the same safeguards; the repository's
``gunicorn.conf.py`` only re-exports this module.

* gevent workers: one greenlet per connection, thousands of open streams per
  worker. gunicorn's gevent worker monkey-patches before loading the app, so
  the app never calls ``patch_all()`` itself, and nothing here imports
  ``ssl``/``openai`` in the master (no ``preload_app``).
* ``timeout`` is only the worker heartbeat under gevent: a live stream is never
  cut by it (a CPU-bound loop on the hub would be).
* With the in-memory store, a POST and its GET must reach the same process,
  so more than one worker requires ``CHATSTREAM_REDIS_URL``.

Environment: ``HOST``, ``PORT``, ``WEB_CONCURRENCY``, ``WORKER_CONNECTIONS``,
``GRACEFUL_TIMEOUT``, ``ACCESS_LOG``, ``LOG_LEVEL``, ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"]
# gunicorn's gevent worker plus a short header timeout for new connections
# and a cap on open connections per client address (slowloris): see
# chatstream/guarded_worker.py, CHATSTREAM_HEADER_TIMEOUT_S and
# CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS.
worker_class = "chatstream.guarded_worker.GuardedGeventWorker"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
if workers > 1 and not os.environ.get("CHATSTREAM_REDIS_URL"):
    print(
        f"chatstream: WEB_CONCURRENCY={workers} needs CHATSTREAM_REDIS_URL (streams are "
        "in-memory per process); running 1 worker.",
        file=sys.stderr,
    )
    workers = 1
timeout = 30
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "25"))
# Idle time between requests on a kept-alive connection (gunicorn's gevent
# worker also uses it as the deadline for reading each request's headers; the
# guarded worker shortens that for a connection's first request).
keepalive = 75
# gunicorn 27 opens a control socket at one path per user: two servers on one
# machine would collide.
control_socket_disable = True
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


# prometheus-client multiprocess mode: every worker writes its samples under
# one directory, wiped when the master starts; /metrics aggregates them.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatstream-metrics-")

# gevent records, for every greenlet it spawns, who spawned it and the spawning
# stack (debugging aids for ``gevent.util.print_run_info``): a stack walk and
# about 1.3 KB per greenlet, and every open stream has two (its connection's and
# its generation's). Off unless the environment asks for it (bench/README: S5).
os.environ.setdefault("GEVENT_TRACK_GREENLET_TREE", "false")


def on_starting(server: Any) -> None:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_worker_init(worker: Any) -> None:
    """Drain streams on SIGTERM (see ``chatstream/shutdown.py``).

    gunicorn registered its own SIGTERM handler before this hook runs; chain
    ours after it so the worker still stops accepting and waits
    ``graceful_timeout`` as usual.
    """
    import signal

    from chatstream import shutdown

    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(sig: int, frame: Any) -> None:
        if callable(previous):
            previous(sig, frame)
        shutdown.begin(worker.cfg.graceful_timeout)

    signal.signal(signal.SIGTERM, on_sigterm)
    _tune_gc()


#: Allocations between young-generation collections (CPython's default: 700).
_GC_GEN0 = 50_000


def _tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what the app loaded.

    A worker holding thousands of streams has millions of live objects
    (greenlets, frames, HTTP state), and with CPython's default thresholds
    (700, 10, 10) a collection starts every 700 net allocations and a full
    one scans them all: about 5% of the worker's CPU in bench U1-1000 (timed
    with ``gc.callbacks``). chatstream's per-stream objects are freed by
    reference counting (no cycles on the token path), so collecting less
    often costs little memory. ``gc.freeze()`` moves everything loaded so
    far (modules, the app) out of the collector's sight, as Instagram's
    servers do. ``CHATSTREAM_GC_GEN0`` overrides the threshold; 0 keeps
    CPython's defaults.
    """
    import gc

    gen0 = int(os.environ.get("CHATSTREAM_GC_GEN0", _GC_GEN0))
    if gen0 <= 0:
        return
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, max(gen1, 20), max(gen2, 20))
