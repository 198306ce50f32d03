"""Start pacing: streams already running come before starting new ones.

A worker is one core. When more generations arrive than it can serve, every
stream slows down together: the answers already on screen stutter behind
the new requests' set-up work and the new streams' tokens. The pacer makes
the trade explicit and one-sided. It watches how late the event loop runs
(a ticker sleeps ``PACING_TICK_MS`` and measures by how much it overslept);
once that lag exceeds ``START_MAX_LAG_MS``, it caps how many generations may
run at once (a window, as TCP's congestion window: shrunk by a quarter on
each late tick, grown by :data:`INCREASE` on each tick on time) and new generations wait,
in arrival order, before their adapter starts. Their streams exist at once
(the POST is answered, readers attach and get ``: ping``); only their first
token comes later. Streams already running keep their pace.

A fixed cap would not do: what a worker can carry depends on the model (a
fast upstream, a slow one, the demo), not on a number. The loop's lag is what
the running streams' readers feel, so it is the signal; the window follows
it. Nothing waits while the worker keeps up: there is no window until a tick
finds the loop behind, and none again once the queue is empty and the loop
on time. At least :data:`MIN_WINDOW` generations always run, so a saturated
worker still makes progress; ``MAX_STREAMS`` still bounds the queue.

Config keys: ``START_MAX_LAG_MS`` (0: no pacing), ``PACING_TICK_MS``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .. import metrics
from ..concurrency import Driver
from ..concurrency import EventLike

__all__ = ["DECREASE", "INCREASE", "MIN_WINDOW", "StartPacer"]

#: Generations that may always run, however late the loop.
MIN_WINDOW = 8
#: A late tick shrinks the window to this share of itself.
DECREASE = 0.75
#: A tick on time grows the window by this many generations. Four, not one:
#: a late tick costs a quarter of the window, and regaining it one per 5 ms
#: tick held starts back long after the loop was on time again (bench/README,
#: fourth pass: TTFT p99 against Node's 0.94x -> 0.84x at U1-1000 and
#: 0.96x -> 0.69x at U1-500, end-lag p99 still below Node's).
INCREASE = 4


class StartPacer:
    """Holds new generations while the event loop runs late.

    :param driver: sleeps, events and the ticking task.
    :param config: the app config (keys in the module docstring).
    """

    def __init__(self, driver: Driver, config: Mapping[str, Any]) -> None:
        self.driver = driver
        self.max_lag_s: float = (config.get("START_MAX_LAG_MS") or 0) / 1000
        self.tick_s: float = config.get("PACING_TICK_MS", 5) / 1000
        #: Generations waiting to start, oldest first.
        self.waiting: deque[EventLike] = deque()
        #: Generations started and not yet ended.
        self.active = 0
        #: How many may run at once; ``None`` while the loop keeps up.
        self.window: float | None = None
        #: The last tick's lag, in seconds.
        self.lag_s = 0.0
        self._alive = False
        self._lock = threading.Lock()  # the threads driver shares the counts

    @property
    def enabled(self) -> bool:
        return self.max_lag_s > 0

    def enter(self) -> None:
        """Return when a new generation may start; pair with :meth:`leave`."""
        with self._lock:
            if not self.enabled:
                self.active += 1
                return
            self._ensure_ticking()
            if self.window is None or (not self.waiting and self.active < self.window):
                self.active += 1
                return
            event = self.driver.event()
            self.waiting.append(event)
        metrics.start_paced()
        event.wait()  # :meth:`_admit` counted it

    def leave(self) -> None:
        """A generation that :meth:`enter` let start has ended."""
        with self._lock:
            self.active -= 1
            self._admit()

    def observe(self, lag_s: float) -> None:
        """One tick: resize the window to the loop's lag and admit what fits."""
        with self._lock:
            self.lag_s = lag_s
            if lag_s > self.max_lag_s:
                base = self.active if self.window is None else min(self.window, self.active)
                self.window = max(MIN_WINDOW, base * DECREASE)
            elif self.window is not None:
                if self.waiting:
                    self.window += INCREASE
                else:
                    self.window = None  # on time with nobody waiting: no cap
            self._admit()

    def release_all(self) -> None:
        """Let every waiter start (the ticker stops, or the worker shuts down)."""
        with self._lock:
            self.window = None
            self._admit()

    def _admit(self) -> None:  # under the lock
        window = self.window
        while self.waiting and (window is None or self.active < window):
            self.active += 1
            self.waiting.popleft().set()

    def _ensure_ticking(self) -> None:  # under the lock
        if not self._alive:
            self._alive = True
            self.driver.spawn(self._tick)

    def _tick(self) -> None:
        try:
            while True:
                before = time.monotonic()
                self.driver.sleep(self.tick_s)
                self.observe(time.monotonic() - before - self.tick_s)
                with self._lock:
                    if not self.waiting and not self.active:
                        self._alive = False
                        return
        finally:
            if self._alive:  # killed: nobody may wait for a ticker that is gone
                self._alive = False
                self.release_all()
