"""The gevent driver: greenlets on the hub (gunicorn's gevent worker).

Its :meth:`GeventDriver.channel` covers two of the three hand-off cases:

* greenlets on both sides: :class:`GreenletChannel`, over
  :class:`gevent.queue.Queue`;
* a *native* thread producing for a greenlet consumer (a blocking producer
  under gevent): :class:`ThreadToHubChannel`. gevent's own primitives are not
  thread-safe (gevent/gevent#1739), so this hand-off is written by hand, once:
  a deque guarded by a native lock, the producer waits on a native condition
  when the buffer is full, and wakes the consumer through the hub's
  thread-safe ``async_`` watcher (the same mechanism gevent's thread pool
  uses).

(Threads on both sides is the threading driver's :class:`~.threads.NativeChannel`.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from typing import Generic
from typing import TypeVar

import gevent
import gevent.event
import gevent.queue
from gevent import monkey
from gevent._hub_local import get_hub_if_exists
from gevent.hub import Waiter

from ..errors import Cancelled
from .base import Channel
from .base import Driver
from .base import Empty
from .base import EventLike
from .base import Sleeper
from .threads import NativeChannel

__all__ = ["GeventDriver", "GreenletChannel", "GreenletSleeper", "ThreadToHubChannel"]

T = TypeVar("T")

# ``threading`` and ``_thread`` as they were before any monkey-patching. Even
# the unpatched ``threading.Thread`` starts through
# ``threading._start_new_thread``, which gevent patches to spawn a greenlet.
_native_condition: type[threading.Condition] = monkey.get_original("threading", "Condition")
_native_lock: Callable[[], Any] = monkey.get_original("threading", "Lock")
_start_native_thread: Callable[..., int] = monkey.get_original("_thread", "start_new_thread")
_new_event: Callable[[], EventLike] = gevent.event.Event


class ThreadToHubChannel(NativeChannel[T]):
    """A native-thread producer hands items to a greenlet consumer.

    The producer side is :class:`NativeChannel`'s; only waking and waiting
    on the consumer side differ, because the consumer is a greenlet. Make it
    in the consumer's thread: it binds to that thread's hub.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize, _native_condition(_native_lock()))
        self._ready = gevent.event.Event()
        # ``async_().send()`` is the one libev/libuv call that is safe from
        # another thread; its callback runs in the hub and wakes the consumer.
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._ready.set)

    def put(self, item: T) -> None:  # runs in the native thread
        super().put(item)
        self._watcher.send()

    def get(self, timeout: float | None = None) -> T:  # runs in a greenlet
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._ready.clear()
            with self._cond:  # held briefly by either side, never while waiting
                if self._closed:
                    raise Cancelled("channel closed")
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Empty
            self._ready.wait(remaining)

    def close(self) -> None:
        super().close()
        self._watcher.send()
        # The watcher is released when the consumer drops the channel; closing
        # it here could race a producer's final ``send()``.


_CLOSED: Any = object()


class GreenletChannel(Generic[T]):
    """Bounded hand-off between greenlets."""

    def __init__(self, maxsize: int) -> None:
        self._queue: Any = gevent.queue.Queue(maxsize)
        self._closed = False

    def put(self, item: T) -> None:
        while not self._closed:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except gevent.queue.Full:
                continue
        raise Cancelled("channel closed")

    def get(self, timeout: float | None = None) -> T:
        if self._closed:
            raise Cancelled("channel closed")
        try:
            item: T = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            raise Empty from None
        if item is _CLOSED or self._closed:
            raise Cancelled("channel closed")
        return item

    def close(self) -> None:
        self._closed = True
        try:  # wake a consumer blocked on an empty queue
            self._queue.put_nowait(_CLOSED)
        except gevent.queue.Full:  # a full queue has no blocked consumer
            pass


class GreenletSleeper:
    """An interruptible ``gevent.sleep``.

    ``Event.wait(timeout)`` arms a :class:`gevent.Timeout` (an exception
    object, a context manager and a timer) per call; a model that sleeps
    between tokens would pay that per token. This waits on one loop timer and
    a :class:`gevent.hub.Waiter`, as ``gevent.sleep`` does, and
    :meth:`interrupt` wakes it from any greenlet through the hub.
    """

    def __init__(self) -> None:
        self._hub = gevent.get_hub()
        self._waiter: Any = None
        self._interrupted = False

    def sleep(self, seconds: float) -> bool:
        if self._interrupted:
            return True
        waiter = self._waiter = Waiter(self._hub)
        timer = self._hub.loop.timer(seconds)
        timer.start(waiter.switch, False)
        try:
            return bool(waiter.get())
        finally:
            timer.close()
            self._waiter = None

    def interrupt(self) -> None:
        self._interrupted = True
        waiter = self._waiter
        if waiter is not None:  # Waiter.switch must run in the hub
            self._hub.loop.run_callback(waiter.switch, True)


def _destroying_hub(fn: Callable[..., object], *args: object) -> None:
    """Run ``fn`` on a native thread, then free the hub it may have made.

    A native thread that touches gevent's API (a patched socket, DNS lookup,
    sleep) gets a hub of its own, with a loop and a resolver thread pool;
    gevent asks for ``destroy()`` before the thread goes (``Hub.destroy``).
    """
    try:
        fn(*args)
    finally:
        hub = get_hub_if_exists()
        if hub is not None:
            hub.destroy(destroy_loop=True)


class GeventDriver(Driver):
    """Greenlets on this thread's hub; blocking work on native threads."""

    name = "gevent"

    def event(self) -> EventLike:
        return _new_event()

    def sleeper(self) -> Sleeper:
        return GreenletSleeper()

    def spawn(self, fn: Callable[..., object], *args: object) -> object:
        return gevent.spawn(fn, *args)

    def spawn_native(self, fn: Callable[..., object], *args: object) -> object:
        return _start_native_thread(_destroying_hub, (fn, *args))

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def channel(self, maxsize: int, *, native_producer: bool) -> Channel[Any]:
        if native_producer:
            return ThreadToHubChannel(maxsize)
        return GreenletChannel(maxsize)
