"""The threading driver: native threads and locks (``flask run``, unit tests).

:class:`NativeChannel` is also the producer half of the gevent driver's
thread-to-hub hand-off (:mod:`.greenlets`), which gives it native locks.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any
from typing import Generic
from typing import TypeVar

from ..errors import Cancelled
from .base import Channel
from .base import Driver
from .base import Empty
from .base import EventLike
from .base import Sleeper

__all__ = ["NativeChannel", "ThreadDriver", "ThreadSleeper"]

T = TypeVar("T")


class NativeChannel(Generic[T]):
    """Bounded hand-off between native threads: a deque under a condition.

    :param maxsize: items buffered before :meth:`put` waits.
    :param condition: a condition over a native lock (the process's
        ``threading`` ones may be gevent's after monkey-patching).
    """

    def __init__(self, maxsize: int, condition: threading.Condition) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxsize = maxsize
        self._cond = condition
        self._closed = False

    def put(self, item: T) -> None:
        with self._cond:
            while len(self._items) >= self._maxsize and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                raise Cancelled("channel closed")
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items or self._closed:
                if self._closed:
                    raise Cancelled("channel closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class ThreadSleeper:
    """An interruptible sleep on a :class:`threading.Event`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def sleep(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def interrupt(self) -> None:
        self._event.set()


def _start_daemon(fn: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


class ThreadDriver(Driver):
    """Everything on native threads: a blocking call blocks only its thread."""

    name = "threading"

    def event(self) -> EventLike:
        return threading.Event()

    def sleeper(self) -> Sleeper:
        return ThreadSleeper()

    def spawn(self, fn: Callable[..., object], *args: object) -> object:
        return _start_daemon(fn, *args)

    def spawn_native(self, fn: Callable[..., object], *args: object) -> object:
        return _start_daemon(fn, *args)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def channel(self, maxsize: int, *, native_producer: bool) -> Channel[Any]:
        return NativeChannel(maxsize, threading.Condition(threading.Lock()))
