"""Spawn, events, sleep and bounded hand-offs, for gevent or for threads.

The driver is chosen once at start-up (like python-engineio's
``async_drivers``) and passed to everything that needs one: under gunicorn's
gevent worker the process is already monkey-patched, so greenlets are used;
under ``flask run`` (threaded, no gevent) plain threads are.

* :mod:`.base`: the :class:`Driver` interface, the :class:`Channel`,
  :class:`Sleeper` and :class:`EventLike` protocols, and the choice.
* :mod:`.threads`: :class:`~.threads.ThreadDriver` and the native-thread
  hand-off :class:`~.threads.NativeChannel`.
* :mod:`.greenlets`: :class:`~.greenlets.GeventDriver`, the greenlet hand-off
  and the hand-written native-thread-to-hub hand-off (gevent's primitives are
  not thread-safe, gevent/gevent#1739).
"""

from __future__ import annotations

from .base import Channel
from .base import Driver
from .base import Empty
from .base import EventLike
from .base import Sleeper
from .base import gevent_active
from .greenlets import GeventDriver
from .threads import ThreadDriver

__all__ = [
    "Channel",
    "Driver",
    "Empty",
    "EventLike",
    "GeventDriver",
    "Sleeper",
    "ThreadDriver",
    "gevent_active",
    "get_driver",
]

_DRIVER: Driver | None = None


def get_driver() -> Driver:
    """The process-wide driver, picked on first use (after gunicorn patched).

    Only the app factory calls this; everything else is handed its driver.
    """
    global _DRIVER
    if _DRIVER is None:
        _DRIVER = Driver()
    return _DRIVER
