"""The reader lifecycle: one owner for what every open event stream shares.

:class:`Readers` holds, for one app, everything about the SSE responses open
in this process (the way sse-starlette keeps ping, disconnect and shutdown in
one response class):

* how many are open (``/healthz``, the shutdown log) and the
  ``chatstream_readers_active`` gauge;
* the heartbeat :class:`~chatstream.heartbeat.Ticker`, running while any is;
* the draining flag set by :mod:`chatstream.shutdown`, and the id-less
  :data:`RECONNECT` frame readers get then.

The events views use :meth:`Readers.attach` as a context around the response
generator::

    attachment = readers.attach(stream_id)   # opens the store reader now
    with attachment as reader:               # inside the generator
        ...

The reader is opened when the view runs, not at the generator's first step,
so a stream is claimed as soon as a reader asks for it (the id-less
``GET /api/streaming`` picks unclaimed streams) and a missing stream is a
JSON ``404`` before any header is sent. ``close()`` is idempotent: the view
also registers it with the response, so a response whose body never started
still releases its reader.

Config keys: ``HEARTBEAT_S``.
"""

from __future__ import annotations

from . import metrics
from . import sse
from .concurrency import Driver
from .heartbeat import Ticker
from .store import StreamReader
from .store import StreamStore

#: Sent to every open reader when this process drains (no id: the browser
#: keeps its ``Last-Event-ID`` and reconnects by itself, resuming exactly).
RECONNECT = sse.encode_json(
    {
        "code": "server_restarting",
        "message": "This server is restarting; reconnecting.",
        "reconnect": True,
    },
    event="error",
)


class Attachment:
    """One open reader, counted from :meth:`Readers.attach` until :meth:`close`."""

    __slots__ = ("reader", "_readers", "_closed")

    def __init__(self, readers: Readers, reader: StreamReader) -> None:
        self.reader = reader
        self._readers = readers
        self._closed = False

    def __enter__(self) -> StreamReader:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the reader (once; later calls do nothing)."""
        if not self._closed:
            self._closed = True
            self._readers._detached()
            self.reader.close()


class Readers:
    """The SSE readers of one app: count, heartbeat, draining, reconnect frame.

    :param store: where readers read (its ``wake_all`` drives the heartbeat).
    :param driver: concurrency primitives for the ticker.
    :param heartbeat_s: seconds between heartbeats while a stream is silent.
    """

    def __init__(self, store: StreamStore, driver: Driver, heartbeat_s: float) -> None:
        self._store = store
        #: SSE responses open in this process right now.
        self.count = 0
        #: Set by :meth:`drain`: readers are told to reconnect elsewhere.
        self.draining = False
        self.ticker = Ticker(driver, store.wake_all, lambda: self.count > 0, heartbeat_s)

    def attach(self, stream_id: str) -> Attachment:
        """Open a reader of ``stream_id`` and count it.

        :raises NotFound: unknown or expired stream.
        """
        reader = self._store.open_reader(stream_id)
        self.count += 1
        metrics.READERS_ACTIVE.inc()
        self.ticker.ensure_running()
        return Attachment(self, reader)

    def _detached(self) -> None:
        self.count -= 1
        metrics.READERS_ACTIVE.dec()

    def drain(self) -> None:
        """Tell every open reader to reconnect (shutdown): set the flag, wake them."""
        self.draining = True
        self._store.wake_all()
