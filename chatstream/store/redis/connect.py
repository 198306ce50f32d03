"""From the app config to a store: the two Redis clients and the store's settings.

Config keys: ``REDIS_URL``, ``REDIS_BEAT_S``, ``REDIS_LIVENESS_S``,
``REDIS_OUTAGE_BUDGET_S``, ``STREAM_TTL_S``, ``GENERATION_TIMEOUT_S``,
``DETACH_GRACE_S``, ``MAX_EVENTS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["POOL_SIZE", "POOL_WAIT_S", "clients", "settings"]

#: Commands in flight at once per worker; greenlets beyond it wait their turn
#: (for up to ``POOL_WAIT_S``), so connections stay flat however many streams.
POOL_SIZE = 16
POOL_WAIT_S = 30


def clients(config: Mapping[str, Any]) -> tuple[redis.Redis, redis.Redis]:
    """``(pooled client, client for the one blocking XREAD)``."""
    url = config["REDIS_URL"]
    budget = config.get("REDIS_OUTAGE_BUDGET_S", 30.0)
    # A stalled Redis accepts connections and never answers: each try
    # fails only at the socket timeout, so it must be well inside the
    # budget for the budget to mean anything (10 s at the default 30 s).
    timeout = min(10.0, max(0.5, budget / 3))
    # The store retries itself, with backoff and the budget in view;
    # redis-py's own retries would only stretch each failed try.
    no_retry = Retry(NoBackoff(), 0)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        socket_timeout=timeout,
        socket_connect_timeout=min(3.0, timeout),
        health_check_interval=30,
        retry=no_retry,
    )
    block_s = max(config.get("REDIS_BEAT_S", 1.0), 1.0)
    blocking = redis.Redis.from_url(
        url,
        socket_timeout=block_s + timeout,
        socket_connect_timeout=min(3.0, timeout),
        single_connection_client=True,
        retry=no_retry,
    )
    return redis.Redis(connection_pool=pool), blocking


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``RedisStreamStore`` (after its clients and driver)."""
    return {
        "ttl_s": config["STREAM_TTL_S"],
        "running_ttl_s": config["GENERATION_TIMEOUT_S"] + config["STREAM_TTL_S"],
        "beat_s": config.get("REDIS_BEAT_S", 1.0),
        "liveness_s": config.get("REDIS_LIVENESS_S", 5.0),
        "max_events": config["MAX_EVENTS"],
        "stale_s": config.get("DETACH_GRACE_S", 30.0),
        "outage_budget_s": config.get("REDIS_OUTAGE_BUDGET_S", 30.0),
    }
