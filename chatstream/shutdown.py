"""Graceful shutdown: finish what runs, then send readers elsewhere.

gunicorn's SIGTERM gives a worker ``graceful_timeout`` seconds before it
kills the connections it still holds. ``gunicorn.conf.py`` calls
:func:`begin` from the worker's SIGTERM handler; then, for every app in this
process:

1. new generations are refused (``503`` + ``Retry-After``);
2. running generations get until ``graceful_timeout - margin`` to finish;
3. those still running are cancelled with an ``error`` event
   ``server_shutdown`` (the answer cannot move to another process);
4. every open reader gets an ``error`` event ``server_restarting`` with
   ``"reconnect": true`` and *no id* (:data:`chatstream.readers.RECONNECT`,
   sent by the reader lifecycle's owner), then its response ends. The browser's
   ``EventSource`` reconnects by itself with its ``Last-Event-ID``; with the
   Redis store another instance resumes the stream with nothing lost.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING

from .readers import RECONNECT

if TYPE_CHECKING:
    from .extension import State as Chatstream

log = logging.getLogger(__name__)

#: Left of the graceful timeout for steps 3 and 4.
MARGIN_S = 3.0

__all__ = ["MARGIN_S", "RECONNECT", "begin", "drain", "register"]

_apps: weakref.WeakSet[Chatstream] = weakref.WeakSet()


def register(ext: Chatstream) -> None:
    """Let :func:`begin` find this app's runner, store and readers."""
    _apps.add(ext)


def begin(graceful_timeout_s: float) -> None:
    """Start draining every app of this process (non-blocking)."""
    for ext in list(_apps):
        ext.driver.spawn(drain, ext, graceful_timeout_s)


def drain(ext: Chatstream, graceful_timeout_s: float) -> None:
    """Steps 1-4 of the module docstring, for one app."""
    runner, store = ext.runner, ext.store
    runner.shutdown()
    log.info(
        "shutdown: %d generation(s) running, %d reader(s)", len(runner.running), ext.readers.count
    )
    deadline = time.monotonic() + max(0.0, graceful_timeout_s - MARGIN_S)
    while runner.running and time.monotonic() < deadline:
        ext.driver.sleep(0.1)
    for stream_id in list(runner.running):
        try:
            store.cancel(stream_id, "shutdown")
        except Exception:
            log.exception("shutdown: cannot cancel a stream")
    stop = time.monotonic() + 1.0
    while runner.running and time.monotonic() < stop:  # terminal events written
        ext.driver.sleep(0.05)
    ext.readers.drain()
