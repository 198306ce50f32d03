"""Spawn, events, sleep and a bounded hand-off, for gevent or for threads.

The driver is chosen once at start-up (like python-engineio's
``async_drivers``): under gunicorn's gevent worker the process is already
monkey-patched, so greenlets are used; under ``flask run`` (threaded, no
gevent) plain threads are.

:class:`Channel` is the bounded producer -> consumer hand-off behind the
callback bridge. Three cases exist and each needs its own primitive:

* threads on both sides: :class:`queue.Queue`-like, native locks;
* greenlets on both sides: :class:`gevent.queue.Queue`;
* a *native* thread producing for a greenlet consumer (a blocking producer
  under gevent). gevent's own primitives are not thread-safe
  (gevent/gevent#1739), so this hand-off is written by hand, once: a deque
  guarded by a native lock, the producer waits on a native condition when
  the buffer is full, and wakes the consumer through the hub's thread-safe
  ``async_`` watcher (the same mechanism gevent's thread pool uses).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any
from typing import Generic
from typing import Protocol
from typing import TypeVar

from .errors import Cancelled

T = TypeVar("T")


class Empty(Exception):
    """:meth:`Channel.get` timed out."""


class EventLike(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Channel(Protocol[T]):
    def put(self, item: T) -> None:
        """Hand over ``item``, waiting while full. :raises Cancelled: closed."""

    def get(self, timeout: float | None = None) -> T:
        """Take the next item. :raises Empty: timed out. :raises Cancelled: closed."""

    def close(self) -> None:
        """Cancel both sides: pending items are dropped, waiters wake."""


def gevent_active() -> bool:
    """True when the process runs on gevent (gunicorn's gevent worker patched it)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))


def _native(name: str) -> Any:
    """A threading attribute as it was before any monkey-patching."""
    if gevent_active():
        from gevent import monkey

        return monkey.get_original("threading", name)
    return getattr(threading, name)


class _NativeChannel(Generic[T]):
    """Bounded hand-off between native threads."""

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxsize = maxsize
        self._cond = _native("Condition")(_native("Lock")())
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


class _ThreadToHubChannel(_NativeChannel[T]):
    """A native-thread producer hands items to a greenlet consumer.

    The producer side is :class:`_NativeChannel`'s; only waking and waiting
    on the consumer side differ, because the consumer is a greenlet.
    """

    def __init__(self, maxsize: int) -> None:
        import gevent
        import gevent.event

        super().__init__(maxsize)
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


class _GreenletChannel(Generic[T]):
    """Bounded hand-off between greenlets."""

    def __init__(self, maxsize: int) -> None:
        import gevent.queue

        self._queue: Any = gevent.queue.Queue(maxsize)
        self._closed = False

    def put(self, item: T) -> None:
        import gevent.queue

        while not self._closed:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except gevent.queue.Full:
                continue
        raise Cancelled("channel closed")

    def get(self, timeout: float | None = None) -> T:
        import gevent.queue

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
        import gevent.queue

        self._closed = True
        try:  # wake a consumer blocked on an empty queue
            self._queue.put_nowait(_CLOSED)
        except gevent.queue.Full:  # a full queue has no blocked consumer
            pass


def _destroying_hub(fn: Callable[..., object], *args: object) -> None:
    """Run ``fn`` on a native thread, then free the hub it may have made.

    A native thread that touches gevent's API (a patched socket, DNS lookup,
    sleep) gets a hub of its own, with a loop and a resolver thread pool;
    gevent asks for ``destroy()`` before the thread goes (``Hub.destroy``).
    """
    try:
        fn(*args)
    finally:
        from gevent._hub_local import get_hub_if_exists

        hub = get_hub_if_exists()
        if hub is not None:
            hub.destroy(destroy_loop=True)


class Sleeper(Protocol):
    def sleep(self, seconds: float) -> bool:
        """Sleep; :returns: True if :meth:`interrupt` cut it short (or had)."""

    def interrupt(self) -> None:
        """End the current and every later :meth:`sleep` at once."""


class _ThreadSleeper:
    def __init__(self) -> None:
        self._event = threading.Event()

    def sleep(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def interrupt(self) -> None:
        self._event.set()


class _GreenletSleeper:
    """An interruptible ``gevent.sleep``.

    ``Event.wait(timeout)`` arms a :class:`gevent.Timeout` (an exception
    object, a context manager and a timer) per call; a model that sleeps
    between tokens would pay that per token. This waits on one loop timer and
    a :class:`gevent.hub.Waiter`, as ``gevent.sleep`` does, and
    :meth:`interrupt` wakes it from any greenlet through the hub.
    """

    def __init__(self) -> None:
        import gevent
        from gevent.hub import Waiter

        self._hub = gevent.get_hub()
        self._new_waiter = Waiter
        self._waiter: Any = None
        self._interrupted = False

    def sleep(self, seconds: float) -> bool:
        if self._interrupted:
            return True
        waiter = self._waiter = self._new_waiter(self._hub)
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


class Driver:
    """Concurrency primitives for one process, fixed at start-up.

    :param name: ``"gevent"`` or ``"threading"``; ``None`` picks gevent when
        the process is monkey-patched.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ("gevent" if gevent_active() else "threading")
        if self.name not in ("gevent", "threading"):
            raise ValueError(f"unknown concurrency driver {self.name!r}")
        if self.name == "gevent":
            import gevent.event

            self._event_class: Callable[[], EventLike] = gevent.event.Event
        else:
            self._event_class = threading.Event

    def event(self) -> EventLike:
        """A new event (called on the hot path: one class lookup, no import)."""
        return self._event_class()

    def sleeper(self) -> Sleeper:
        """A sleep that another greenlet or thread can cut short."""
        return _GreenletSleeper() if self.name == "gevent" else _ThreadSleeper()

    def spawn(self, fn: Callable[..., object], *args: object) -> object:
        """Run ``fn(*args)`` concurrently (a greenlet, or a daemon thread)."""
        if self.name == "gevent":
            import gevent

            return gevent.spawn(fn, *args)
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        return thread

    def spawn_native(self, fn: Callable[..., object], *args: object) -> object:
        """Run a *blocking* ``fn`` on a real OS thread, never on the hub."""
        if gevent_active():
            # Even the unpatched ``threading.Thread`` starts through
            # ``threading._start_new_thread``, which gevent patched to spawn a
            # greenlet: go to ``_thread`` as it was before patching.
            from gevent import monkey

            start = monkey.get_original("_thread", "start_new_thread")
            return start(_destroying_hub, (fn, *args))
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float) -> None:
        if self.name == "gevent":
            import gevent

            gevent.sleep(seconds)
        else:
            time.sleep(seconds)

    def channel(self, maxsize: int, *, native_producer: bool) -> Channel[Any]:
        """A bounded hand-off to the current (consumer) context.

        :param native_producer: the producer runs on :meth:`spawn_native`.
        """
        if self.name == "threading":
            return _NativeChannel(maxsize)
        if native_producer:
            return _ThreadToHubChannel(maxsize)
        return _GreenletChannel(maxsize)


_DRIVER: Driver | None = None


def get_driver() -> Driver:
    """The process-wide driver, picked on first use (after gunicorn patched)."""
    global _DRIVER
    if _DRIVER is None:
        _DRIVER = Driver()
    return _DRIVER
