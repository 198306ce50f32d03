"""What the parts of the Redis store share: one client, the settings, the
instance's keys, the write-side outage tracker and who holds which stream.

The store (:mod:`.store`) builds one :class:`Shared` and hands it to each
part; the registries in it are the only state two parts both touch.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from dataclasses import field

import redis

from ...concurrency import Driver
from .copies import Mirror
from .copies import Reader
from .copies import ShippedStream
from .keys import InstanceKeys
from .outage import OutageTracker
from .scripts import Scripts

__all__ = ["Shared", "outage_tracker"]


@dataclass(eq=False)
class Shared:
    """Connections, settings and registries of one store (one per worker).

    ``ttl_s`` / ``running_ttl_s``: key TTLs of a finished / running stream;
    ``stale_s``: a remote reader not seen for this long is taken for gone;
    ``writes``: failures of writes (the flusher and the keeper).
    """

    client: redis.Redis
    driver: Driver
    scripts: Scripts
    me: InstanceKeys
    ttl_s: int
    running_ttl_s: int
    beat_s: float
    liveness_s: float
    stale_s: float
    max_events: int
    writes: OutageTracker
    #: Streams generated here, held in memory until Redis has all of them.
    owned: dict[str, ShippedStream] = field(default_factory=dict)
    #: Streams generated elsewhere that readers here follow.
    mirrors: dict[str, Mirror] = field(default_factory=dict)
    #: Readers here of streams generated elsewhere, by ``member``.
    remote_readers: dict[str, Reader] = field(default_factory=dict)
    #: The background tasks end (``RedisStreamStore.close``).
    stopped: bool = False

    @classmethod
    def create(
        cls,
        client: redis.Redis,
        driver: Driver,
        *,
        ttl_s: float,
        running_ttl_s: float,
        beat_s: float,
        liveness_s: float,
        stale_s: float,
        max_events: int,
        outage_budget_s: float,
    ) -> Shared:
        """A new instance's share (``stale_s`` raised to at least three beats)."""
        return cls(
            client=client,
            driver=driver,
            scripts=Scripts(client),
            me=InstanceKeys.of(secrets.token_hex(8)),
            ttl_s=int(max(1, ttl_s)),
            running_ttl_s=int(max(1, running_ttl_s)),
            beat_s=beat_s,
            liveness_s=liveness_s,
            stale_s=max(3 * beat_s, stale_s),
            max_events=max_events,
            writes=outage_tracker("writes", outage_budget_s, liveness_s),
        )

    @property
    def alive_ms(self) -> int:
        """The TTL of this instance's liveness key."""
        return int(self.liveness_s * 1000)


def outage_tracker(name: str, budget_s: float, liveness_s: float) -> OutageTracker:
    """A tracker for one direction of Redis use.

    A gap of half the liveness period may already have let an owner's
    liveness key expire (it is refreshed every beat, beat <= liveness/2).
    """
    return OutageTracker(name, budget_s, liveness_s / 2)
