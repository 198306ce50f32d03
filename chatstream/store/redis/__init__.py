"""The stream store on Redis Streams: one contract across workers and machines.

A POST may land on instance A and its ``EventSource`` on instance B. The
generating instance (the *owner*) keeps a local buffer for its own readers
and ships every batch of frames to Redis; other instances read a stream
through a local *mirror* fed by one multiplexed blocking ``XREAD`` per worker.
Liveness keys tell who is alive, reader sets who is reading, and a Redis
outage is ridden out within a budget (the owner keeps every event anyway).

One module per job:

* :mod:`.store`     the front: the stream store API, wiring the parts;
* :mod:`.flusher`   creating streams in Redis and shipping their events;
* :mod:`.mirror`    following streams generated elsewhere (the ``XREAD``
  multiplexer) and the control streams (cancel elsewhere, wake);
* :mod:`.liveness`  this instance's beat, resync, ending streams of dead owners;
* :mod:`.presence`  opening and closing readers; who reads which stream,
  across instances;
* :mod:`.copies`    the in-memory copies of streams and the writer/reader handles;
* :mod:`.state`     what the parts share (client, settings, registries);
* :mod:`.keys`      Redis key names; :mod:`.scripts` the Lua scripts;
* :mod:`.outage`    the outage budget; :mod:`.connect` clients from the app config.

Config keys: ``REDIS_URL``, ``REDIS_BEAT_S``, ``REDIS_LIVENESS_S``,
``REDIS_OUTAGE_BUDGET_S``, ``STREAM_TTL_S``, ``GENERATION_TIMEOUT_S``,
``DETACH_GRACE_S``.
"""

from .store import RedisStreamStore

__all__ = ["RedisStreamStore"]
