"""Redis key names, as small named types: one stream's keys, one instance's keys.

Key layout for a stream ``<id>`` (the braces are a Redis Cluster hash tag, so
all of one stream's keys live on one shard):

* ``cs:{<id>}:ev``      a Redis Stream; one entry per written batch: id
  ``0-<last event id in it>``, ``f`` its events' framed SSE bytes joined,
  ``n`` how many (and ``t = 1`` on the batch with the terminal event);
* ``cs:{<id>}:meta``    a hash: ``state`` (running | finished), ``last``,
  ``owner`` (the instance that generates), ``created``, ``cancel``,
  ``attached``, ``left_at``;
* ``cs:{<id>}:readers`` a sorted set of *remote* reader ids (readers on other
  instances than the owner) scored by last-seen time;
* ``cs:inst:<instance>`` exists while that instance is alive: it refreshes the
  key's short TTL every beat, so liveness costs one command per instance, not
  one per stream;
* ``cs:ctl:<instance>`` the control stream of one instance (cancel requests,
  wake-ups);
* ``cs:ready:<instance>`` written by the readiness check (Redis accepts writes).

Every stream key has a TTL: ``GENERATION_TIMEOUT_S + STREAM_TTL_S`` while
running (no generation outlives its timeout), ``STREAM_TTL_S`` once finished.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InstanceKeys", "StreamKeys"]


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """The keys of one stream: its events, its meta hash, its remote readers."""

    stream_id: str
    events: str
    meta: str
    readers: str

    @classmethod
    def of(cls, stream_id: str) -> StreamKeys:
        tag = f"cs:{{{stream_id}}}"
        return cls(stream_id, f"{tag}:ev", f"{tag}:meta", f"{tag}:readers")


@dataclass(frozen=True, slots=True)
class InstanceKeys:
    """The keys of one instance (one store, in one worker process)."""

    instance: str
    #: Exists while the instance is alive (short TTL, refreshed every beat).
    alive: str
    #: Its control stream (cancel requests, wake-ups).
    control: str
    #: Written by its readiness check: Redis accepts writes.
    probe: str

    @classmethod
    def of(cls, instance: str | bytes) -> InstanceKeys:
        name = instance.decode() if isinstance(instance, bytes) else instance
        return cls(name, f"cs:inst:{name}", f"cs:ctl:{name}", f"cs:ready:{name}")
