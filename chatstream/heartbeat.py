"""One heartbeat ticker per app instead of one timer per waiting reader.

A reader waits for its stream's next frames with no timeout; every
``HEARTBEAT_S`` this ticker wakes all waiting readers at once, and a reader
woken with nothing new writes ``: ping``. Under gevent a wait with a timeout
arms a new timer each time, and readers wait once per token, so one ticker
for the whole process saves a timer per token per reader. The ticker stops
when no reader is left and starts again with the next one.

It is owned by :class:`chatstream.readers.Readers`, which counts the readers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .concurrency import Driver

log = logging.getLogger(__name__)


class Ticker:
    """Wakes every waiting reader of one app every ``interval`` seconds.

    :param driver: spawns the ticking task and sleeps.
    :param wake_all: wakes every waiting reader (the store's ``wake_all``).
    :param has_readers: whether any reader is still open (else the ticker stops).
    :param interval: seconds between wake-ups (``HEARTBEAT_S``).
    """

    def __init__(
        self,
        driver: Driver,
        wake_all: Callable[[], None],
        has_readers: Callable[[], bool],
        interval: float,
    ) -> None:
        self._driver = driver
        self._wake_all = wake_all
        self._has_readers = has_readers
        self._interval = interval
        self._lock = threading.Lock()
        self._running = False

    def ensure_running(self) -> None:
        """Start ticking (call after counting the new reader)."""
        with self._lock:
            if not self._running:
                self._running = True
                self._driver.spawn(self._run)

    def _run(self) -> None:
        while True:
            self._driver.sleep(self._interval)
            with self._lock:
                if not self._has_readers():
                    self._running = False
                    return
            try:
                self._wake_all()
            except Exception:  # a store hiccup must not stop the heartbeats
                log.exception("heartbeat: cannot wake readers")
