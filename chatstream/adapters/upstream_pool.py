"""Upstream connections for the openai adapter: SDK clients over small pools.

One worker may run thousands of streams, each holding one HTTP connection to
the upstream. httpcore's connection pool (under the SDK's httpx) scans every
connection it holds on each request and on each response close, and probes
every idle one with ``select.poll()``; under gevent that poll is gevent's
(about 15 µs, against 1 µs natively). With a single pool of 1,000
connections that scan cost milliseconds of CPU per generation and was the
largest cost of the openai path under load (py-spy, bench U1-500: 45% of the
worker's samples). No setting of httpx bounds it, so connections are spread
over several SDK clients, each with a pool of at most :data:`SHARD_SIZE`:
the scan is bounded by the shard, not by the number of streams.

A generation takes the first shard with a free connection, so at low load
every generation uses shard 0 and its kept-alive connections are reused;
shards are made when first needed, all with one TLS context (building one
loads the CA bundle: tens of milliseconds each). The total stays ``pool`` connections and
``keepalive`` idle ones, split across the shards.
"""

from __future__ import annotations

import importlib
import math
import select
import types
from collections.abc import Callable
from typing import Any

from ..concurrency import gevent_active

try:  # the SDK's HTTP stack from openai 3.0
    from httpx2 import Limits
    from httpx2 import create_ssl_context
except ImportError:  # pragma: no cover - openai 1.x and 2.x use httpx
    from httpx import Limits  # type: ignore[assignment]
    from httpx import create_ssl_context

__all__ = [
    "SHARD_SIZE",
    "PoolShards",
    "create_ssl_context",
    "native_poll",
    "native_readability_probe",
]

#: Connections per pool: the most one pool scan walks.
SHARD_SIZE = 32


def native_poll() -> Any:
    """``select.poll``, the native one even under gevent's monkey-patching.

    For zero-timeout probes of idle connections only: such a poll never
    blocks, and gevent's arms watchers and switches to the hub (about 15 µs
    against 1 µs).
    """
    if gevent_active():
        from gevent import monkey

        return monkey.get_original("select", "poll")
    return select.poll


def native_readability_probe() -> bool:
    """Let httpcore probe idle pooled connections with the native ``poll``.

    Before reusing or after releasing a connection, httpcore asks of every
    idle connection in the pool whether its socket is readable (a server
    that closed it), with ``select.poll().poll(0)``. Under gevent's
    monkey-patching that is gevent's ``poll``: it arms watchers and switches
    to the hub, about 15 µs against 1 µs, and in a py-spy profile of bench
    U1-1000 it was 4% of the worker's CPU. A zero-timeout poll never blocks,
    so the native one is safe on the hub. httpcore has no setting for this,
    so its module gets a ``select`` namespace whose ``poll`` is the native
    one (everything else it uses from ``select`` unchanged).

    :returns: whether a module was changed (only under gevent).
    """
    if not gevent_active():
        return False
    native = types.SimpleNamespace(
        poll=native_poll(),
        POLLIN=select.POLLIN,
        select=select.select,
    )
    changed = False
    for name in ("httpcore2._utils", "httpcore._utils"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "select", None) is select:
            module.select = native  # type: ignore[attr-defined]
            changed = True
    return changed


class PoolShards:
    """SDK clients, made on demand, whose pools share ``pool`` connections.

    :param make_client: builds one SDK client with the given httpx ``Limits``.
    :param make_create: the function that starts a request on that client.
    :param pool: connections in all, at most.
    :param keepalive: idle connections kept in all, at most.
    :param shard_size: connections per client's pool.
    """

    def __init__(
        self,
        make_client: Callable[[Limits], Any],
        make_create: Callable[[Any], Callable[..., Any]],
        pool: int,
        keepalive: int,
        shard_size: int = SHARD_SIZE,
    ) -> None:
        count = math.ceil(pool / shard_size)
        self.sizes = [min(shard_size, pool - i * shard_size) for i in range(count)]
        self.keepalive = [min(size, math.ceil(keepalive * size / pool)) for size in self.sizes]
        self.clients: list[Any] = [None] * count
        self._creates: list[Callable[..., Any] | None] = [None] * count
        self._active = [0] * count
        self._make_client = make_client
        self._make_create = make_create

    def acquire(self) -> tuple[int, Callable[..., Any]]:
        """A shard with a free connection (or the least busy one, whose pool queues).

        :returns: the shard's index (for :meth:`release`) and its ``make_create(client)``.
        """
        active, sizes = self._active, self.sizes
        for index, busy in enumerate(active):
            if busy < sizes[index]:
                break
        else:
            index = min(range(len(active)), key=active.__getitem__)
        active[index] += 1
        create = self._creates[index]
        if create is None:
            create = self._open(index)
        return index, create

    def release(self, index: int) -> None:
        """The generation that acquired shard ``index`` ended."""
        self._active[index] -= 1

    def _open(self, index: int) -> Callable[..., Any]:
        limits = Limits(
            max_connections=self.sizes[index],
            max_keepalive_connections=self.keepalive[index],
        )
        client = self.clients[index] = self._make_client(limits)
        create: Callable[..., Any] = self._make_create(client)
        self._creates[index] = create
        return create

    def first(self) -> Any:
        """Shard 0's client (made if needed): its settings are every shard's."""
        if self.clients[0] is None:
            self._open(0)
        return self.clients[0]

    def close(self) -> None:
        """Close every shard's connections."""
        for client in self.clients:
            if client is not None:
                client.close()
