"""The janitor: enforces the lifecycle limits of running generations.

One task per runner, alive while generations run: every ``SWEEP_S`` it
cancels the generations past the overall timeout (``timeout``) and those
whose stream had no reader for longer than its grace period (``no_reader``:
``ATTACH_GRACE_S`` before the first reader came, ``DETACH_GRACE_S`` after the
last one left). The store expires finished streams itself.

Config keys: ``GENERATION_TIMEOUT_S``, ``ATTACH_GRACE_S``, ``DETACH_GRACE_S``,
``SWEEP_S``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ..concurrency import Driver
from ..errors import NotFound
from ..store import Presence
from ..store import StreamStore
from .outcomes import CancelReason
from .run import Generation

__all__ = ["Janitor"]

log = logging.getLogger("chatstream.generation")


class Janitor:
    """Cancels overdue generations of one runner.

    :param running: the runner's running generations, by stream id (read only).
    :param config: the app config (keys in the module docstring).
    """

    def __init__(
        self,
        store: StreamStore,
        driver: Driver,
        running: Mapping[str, Generation],
        config: Mapping[str, Any],
    ) -> None:
        self.store = store
        self.driver = driver
        self.running = running
        self.timeout_s: float = config["GENERATION_TIMEOUT_S"]
        self.attach_grace_s: float = config["ATTACH_GRACE_S"]
        self.detach_grace_s: float = config["DETACH_GRACE_S"]
        self.sweep_s: float = config["SWEEP_S"]
        self._alive = False

    def ensure_running(self) -> None:
        """Start the janitor's task unless it runs (call after adding a generation)."""
        if not self._alive:
            self._alive = True
            self.driver.spawn(self._patrol)

    def _patrol(self) -> None:
        try:
            while True:
                self.driver.sleep(self.sweep_s)
                self.enforce_limits()
                if not self.running:
                    return
        finally:
            self._alive = False

    def enforce_limits(self) -> None:
        """Enforce the timeout and the reader grace periods once."""
        now = time.monotonic()
        running = list(self.running.values())
        try:
            presences = self.store.presence_many([g.stream_id for g in running])
        except Exception:  # a store hiccup must not kill the janitor
            log.exception("janitor: cannot read reader presence")
            return
        for generation in running:
            presence = presences.get(generation.stream_id)
            reason = self._overdue(generation, presence, now)
            if reason == "no_reader" and presence is not None:
                log.info(
                    "no_reader cancel: %s %.1f s ago",
                    "last reader seen" if presence.ever_attached else "created, no reader since",
                    presence.idle_s,
                    extra={"stream_id": generation.stream_id[:8]},
                )
            if reason:
                try:
                    self.store.cancel(generation.stream_id, reason)
                except NotFound:
                    continue
                except Exception:
                    log.exception("janitor: cannot cancel a stream")

    def _overdue(
        self, generation: Generation, presence: Presence | None, now: float
    ) -> CancelReason | None:
        if now - generation.started > self.timeout_s:
            return "timeout"
        if presence is None or presence.readers:
            return None
        grace = self.detach_grace_s if presence.ever_attached else self.attach_grace_s
        return "no_reader" if presence.idle_s > grace else None
