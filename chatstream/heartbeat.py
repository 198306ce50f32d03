"""One heartbeat ticker per app instead of one timer per waiting reader.

A reader waits for its stream's next frames with no timeout; every
``HEARTBEAT_S`` this ticker wakes all waiting readers at once, and a reader
woken with nothing new writes ``: ping``. Under gevent a wait with a timeout
arms a new timer each time, and readers wait once per token, so one ticker
for the whole process saves a timer per token per reader. The ticker stops
when no reader is left and starts again with the next one.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .extension import State as Chatstream

log = logging.getLogger(__name__)


class Ticker:
    """Wakes every waiting reader of one app every ``interval`` seconds."""

    def __init__(self, ext: Chatstream, interval: float) -> None:
        self._ext = ext
        self._interval = interval
        self._lock = threading.Lock()
        self._running = False

    def ensure(self) -> None:
        """Start ticking (call after counting the new reader in ``ext.readers``)."""
        with self._lock:
            if not self._running:
                self._running = True
                self._ext.driver.spawn(self._run)

    def _run(self) -> None:
        while True:
            self._ext.driver.sleep(self._interval)
            with self._lock:
                if self._ext.readers <= 0:
                    self._running = False
                    return
            try:
                self._ext.store.wake_all()
            except Exception:  # a store hiccup must not stop the heartbeats
                log.exception("heartbeat: cannot wake readers")
