"""How the Redis store rides out a Redis outage: one tracker per direction.

An outage is any run of failed commands (connection refused, a timeout while
Redis is stalled, ``OOM command not allowed``). The store keeps two trackers:
one for writes (the flusher and the keeper) and one for reads (the blocking
``XREAD``), because Redis at ``maxmemory`` still answers reads but refuses
every write.

A tracker answers four questions:

* how long the current outage has lasted, counted from the last good reply
  (a stalled Redis makes commands hang before they fail, so counting from
  the first failure would add a socket timeout to every outage);
* has it outlasted ``budget_s`` (``CHATSTREAM_REDIS_OUTAGE_BUDGET_S``): only
  then do streams end with ``store_unavailable``;
* how long to wait before the next try (redis-py's exponential backoff);
* has Redis answered steadily for long enough to trust what it says about
  other instances. After a stall of Redis or of this process, other
  instances' liveness keys and reader sightings are stale for reasons that
  say nothing about them; :meth:`settled` stays false until they had time
  to beat again.
"""

from __future__ import annotations

import logging
import time

from redis.backoff import ExponentialBackoff

log = logging.getLogger(__name__)


class OutageTracker:
    """Failures and recoveries of one direction (reads or writes) of Redis use.

    :param name: ``reads`` or ``writes`` (for the log).
    :param budget_s: an outage this long ends the streams that depend on it.
    :param gap_s: successful beats further apart than this count as a gap
        (this process or Redis stalled): what others wrote may be stale.
    """

    def __init__(self, name: str, budget_s: float, gap_s: float) -> None:
        self.name = name
        self.budget_s = budget_s
        self.gap_s = gap_s
        now = time.monotonic()
        self.last_ok = now
        self.steady_since = now
        self.failures = 0
        #: The budget ran out during the current outage (streams were ended).
        self.exceeded = False
        self._backoff = ExponentialBackoff(cap=1.0, base=0.05)

    @property
    def down(self) -> bool:
        """The last command failed and none succeeded since."""
        return self.failures > 0

    def ok(self) -> float | None:
        """A command succeeded. :returns: the outage's length if one just ended."""
        now = time.monotonic()
        ended: float | None = None
        if self.failures:
            ended = now - self.last_ok
            self.steady_since = now
            log.warning(
                "redis store: %s work again after %.1f s (%d failed tries)",
                self.name,
                ended,
                self.failures,
            )
        elif now - self.last_ok > self.gap_s:
            self.steady_since = now  # a stall with no error: still a gap
        self.failures = 0
        self.exceeded = False
        self.last_ok = now
        return ended

    def failed(self, exc: BaseException) -> bool:
        """A command failed. :returns: True once per outage, when it outlasts the budget."""
        self.failures += 1
        outage = time.monotonic() - self.last_ok
        if self.failures == 1:
            log.warning(
                "redis store: %s fail (%s: %s); retrying for up to %.0f s",
                self.name,
                type(exc).__name__,
                exc,
                self.budget_s,
            )
        if outage > self.budget_s and not self.exceeded:
            self.exceeded = True
            log.error(
                "redis store: %s failing for %.1f s, past the %.0f s outage budget",
                self.name,
                outage,
                self.budget_s,
            )
            return True
        return False

    def delay(self) -> float:
        """Seconds to wait before the next try (exponential, capped at 1 s)."""
        return float(self._backoff.compute(self.failures))

    def settled(self, window: float) -> bool:
        """Redis has answered without a gap for ``window`` seconds."""
        now = time.monotonic()
        return (
            not self.failures
            and now - self.last_ok <= self.gap_s
            and now - self.steady_since >= window
        )
