"""gunicorn's gevent worker, guarded against idle and half-open connections (slowloris)
and, with start pacing, against arrival bursts that would stall running streams; its
response writes skip a system call per token (:class:`SendFirstSocket`).

``chatstream.gunicorn_conf`` names :class:`GuardedGeventWorker` as its worker class. It is
gunicorn's own ``GeventWorker`` with two guards that gunicorn has no setting for:

* **Header timeout.** A new connection must deliver its first request's line
  and headers within ``CHATSTREAM_HEADER_TIMEOUT_S`` (default 10 s), else it
  is closed. Stock gunicorn waits ``keepalive`` (75 s here) for them, so a
  connection that never sends a byte held a slot that long. Later requests
  on a kept-alive connection still wait ``keepalive``: a proxy's pool of idle
  upstream connections must outlive its own idle timeout.
* **Open connections per client address.** At most
  ``CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS`` (default 100) per peer address
  and worker; one more is answered ``429`` and closed at once, before it takes
  a slot for longer than that. Without it one address could hold all
  ``worker_connections`` (10,000) and lock everyone else out. The peer is the
  TCP peer, so the cap is off behind a proxy (``CHATSTREAM_PROXY_FIX`` set:
  every client shares the proxy's address, which caps per client itself,
  e.g. nginx ``limit_conn``), and peers in gunicorn's ``forwarded_allow_ips``
  (default loopback: a local proxy, the tests, the benchmark) are exempt.

With start pacing on (``CHATSTREAM_START_MAX_LAG_MS``: the openai adapter's
default), which puts the streams already running before new work, the worker
applies the same order to the requests themselves:

* **One new connection per turn of the event loop**, as gunicorn's own gevent
  worker does whenever there are several workers (gevent's server accepts up
  to 100 per turn); the others wait in the kernel's accept queue.
* **At most** :data:`REQUESTS_PER_TURN` **requests start per turn**
  (:class:`TurnGate`); the others wait, in arrival order, for later turns.

Why: gevent runs everything that became ready in one turn of its loop before
the next turn, and a stream's reader is woken through the loop's callback
queue, in line behind the handler greenlets started there. A request costs
about a millisecond of CPU, so in an arrival burst (thousands of requests in
a second) one turn grew to seconds, each longer than the last, and the
streams already running got no token until the burst had been served: 3.5 s
at bench U1-3000 and about a second in ``tests/faults/test_arrival_burst.py``,
where pacing promises they keep their pace. With both bounds a turn holds at
most about 8 ms of request work (bench/README, seventh pass). Without pacing
(the demo's default) the worker keeps gevent's order: the demo trades the
other way, for first tokens sooner and more tokens per write under overload.

What one worker cannot do alone: a client spread over more addresses than
``worker_connections / cap`` can still fill the worker, each connection for
up to the header timeout (or ``keepalive`` after one complete request). A
proxy in front (``deploy/nginx.conf``) holds idle connections far more
cheaply and passes on only complete requests.

The gunicorn master imports the worker class before forking: this module
imports only gevent and gunicorn (``import chatstream`` loads no Flask, redis
or ``ssl``), so nothing is imported before the worker's monkey-patching. The
settings are read from the app's validated config (``CHATSTREAM_*`` keys)
once the worker has loaded it.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections import deque
from typing import Any

import gevent
import gevent.socket
from gevent import getcurrent
from gevent.hub import Waiter
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

#: Used when the WSGI app is not a chatstream app (no validated config).
DEFAULTS: dict[str, Any] = {
    "CHATSTREAM_HEADER_TIMEOUT_S": 10.0,
    "CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS": 100,
    "CHATSTREAM_PROXY_FIX": None,
    "CHATSTREAM_START_MAX_LAG_MS": 0,
}

#: Requests that may start per turn of the event loop while pacing is on. A
#: request is about a millisecond of CPU, so a turn holds at most ~8 ms of
#: request work, under the 20 ms between two tokens of a 50 tokens/s stream.
#: Fewer per turn means more, shorter turns: 2 cost ~5% more CPU per token at
#: bench U1-1000 for no gain in token delay (bench/README, seventh pass).
REQUESTS_PER_TURN = 8

_BODY = (
    b'{"error": {"code": "too_many_connections", '
    b'"message": "Too many open connections from your address."}}'
)
#: The answer to one connection too many (its request, if any, is not read).
REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s" % (len(_BODY), _BODY)
)
#: Seconds between two log lines about refusals from one address (an attack
#: refuses thousands a second; one line each would flood the log).
LOG_EVERY_S = 10.0


class TurnGate:
    """At most ``per_turn`` callers pass per turn of the gevent loop; the rest wait in order.

    gevent has no priority between greenlets: everything that became ready
    in a turn runs before the next, so a burst of requests makes one long
    turn. Each request handler calls :meth:`wait` first. While this turn's
    budget lasts it returns at once (a quiet loop turns often, so nothing
    waits); past it the handler queues, and a zero timer, which fires in the
    next turn, lets the next ``per_turn`` go. Written by hand: gevent's
    semaphores and pools bound how many run at once, not how many start per turn.
    """

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self._waiting: deque[Waiter] = deque()
        self._turn = -1
        self._passed = 0
        self._timer: Any = None

    def wait(self) -> None:
        loop = gevent.get_hub().loop
        if not self._waiting and self._pass(loop):
            return
        waiter = Waiter()
        self._waiting.append(waiter)
        self._schedule(loop)
        try:
            waiter.get()
        except BaseException:  # killed while waiting (shutdown): leave the line
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            raise

    def _pass(self, loop: Any) -> bool:
        if loop.iteration != self._turn:
            self._turn = loop.iteration
            self._passed = 0
        if self._passed < self.per_turn:
            self._passed += 1
            return True
        return False

    def _schedule(self, loop: Any) -> None:
        if self._timer is None:
            self._timer = loop.timer(0)
            self._timer.start(self._release, loop)

    def _release(self, loop: Any) -> None:  # in the hub, a later turn
        self._timer.close()
        self._timer = None
        waiting = self._waiting
        while waiting and self._pass(loop):
            waiting.popleft().switch(None)  # runs the handler until it waits
        if waiting:
            self._schedule(loop)


def peer_host(addr: Any) -> str | None:
    """The IP of a TCP peer (``(host, port, ...)``); None for a UNIX socket."""
    if isinstance(addr, tuple) and addr and isinstance(addr[0], str):
        return addr[0]
    return None


class SendFirstSocket(gevent.socket.socket):  # type: ignore[misc]
    """gevent's socket, whose ``sendall`` tries one plain ``send`` first.

    gunicorn writes every response chunk, so every token frame of an event
    stream, with ``sendall``. gevent's ``sendall`` asks the kernel for the
    send buffer's size on each call (``getsockopt(SO_SNDBUF)``, to cut large
    writes into chunks for PyPy) and slices a memoryview before it sends: about
    2.3 µs per small write on top of the ``send`` itself (bench/README, eighth
    pass). A token frame fits the socket buffer, so one ``send`` takes it
    whole; what a full buffer leaves over goes through gevent's ``sendall``,
    which waits for the socket as before. Set on each accepted connection by
    :meth:`GuardedGeventWorker.handle` (same layout, no new slots).
    """

    __slots__ = ()

    def sendall(self, data: Any, flags: int = 0) -> None:
        sent = self.send(data, flags)
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)


class GuardedGeventWorker(GeventWorker):  # type: ignore[misc]
    """``GeventWorker`` plus a header timeout and a per-address connection cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = 10.0
        self.max_per_address = 0
        #: Open connections per guarded peer address (this worker).
        self.open_per_address: Counter[str] = Counter()
        self.refused = 0
        self._logged_at: dict[str, float] = {}
        #: Handler greenlets whose connection has not yet delivered a request.
        self._fresh: set[Any] = set()
        self._trusted: list[Any] = []
        self._trust_all = False
        #: With start pacing: connections accepted per turn (else gevent's default)...
        self.max_accept: int | None = None
        #: ...and the gate every request passes before it is handled.
        self.gate: TurnGate | None = None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        config = {**DEFAULTS, **dict(getattr(self.wsgi, "config", None) or {})}
        self.header_timeout = float(config["CHATSTREAM_HEADER_TIMEOUT_S"])
        # Behind a proxy every client arrives from the proxy's address.
        cap = int(config["CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS"])
        self.max_per_address = 0 if config["CHATSTREAM_PROXY_FIX"] else cap
        allowed = list(self.cfg.forwarded_allow_ips)
        self._trust_all = "*" in allowed
        self._trusted = [ipaddress.ip_network(a, strict=False) for a in allowed if a != "*"]
        if config["CHATSTREAM_START_MAX_LAG_MS"]:
            self.max_accept = 1
            self.gate = TurnGate(REQUESTS_PER_TURN)

    def run(self) -> None:
        if self.max_accept is not None:
            # gunicorn builds its servers inside ``run`` and keeps no handle on
            # them, so the class default is what can be set: this process
            # serves one app, and gunicorn itself sets 1 on each instance when
            # there are several workers.
            StreamServer.max_accept = self.max_accept
        super().run()

    def handle_request(self, *args: Any) -> Any:
        if self.gate is not None:
            self.gate.wait()
        return super().handle_request(*args)

    def _guarded(self, host: str | None) -> bool:
        if host is None or not self.max_per_address or self._trust_all:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return not any(ip in network for network in self._trusted)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        host = peer_host(addr)
        guarded = self._guarded(host)
        if guarded and host is not None:
            if self.open_per_address[host] >= self.max_per_address:
                self._refuse(client, host)
                return
            self.open_per_address[host] += 1
        if type(client) is gevent.socket.socket:  # not TLS: gevent's SSLSocket sends its own way
            client.__class__ = SendFirstSocket
        current = getcurrent()
        self._fresh.add(current)
        try:
            super().handle(listener, client, addr)
        finally:
            self._fresh.discard(current)
            if guarded and host is not None:
                self.open_per_address[host] -= 1
                if self.open_per_address[host] <= 0:
                    del self.open_per_address[host]

    def timeout_ctx(self) -> Any:
        """The deadline for reading one request's line and headers.

        gunicorn's keep-alive loop enters this around each ``next(parser)``;
        the first request on a connection gets the short header timeout.
        """
        current = getcurrent()
        if current in self._fresh:
            self._fresh.discard(current)
            return gevent.Timeout(self.header_timeout, False)
        return super().timeout_ctx()

    def _refuse(self, client: Any, host: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at.get(host, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at = {h: t for h, t in self._logged_at.items() if now - t < LOG_EVERY_S}
            self._logged_at[host] = now
            self.log.warning(
                "refusing connections from %s: %d open (CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS); "
                "%d refused by this worker so far",
                host,
                self.open_per_address[host],
                self.refused,
            )
        try:
            # Best effort and never blocking: a fresh socket's send buffer
            # takes these few bytes at once, or the peer is gone anyway.
            client.setblocking(False)
            client.send(REFUSAL)
        except OSError:
            pass
        finally:
            util.close(client)
