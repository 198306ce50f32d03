"""The driver interface: what every concurrency driver provides.

:class:`Driver` is the one interface the rest of chatstream uses to spawn,
sleep, make events and hand items over. ``Driver(name)`` returns the named
driver (as ``pathlib.Path(...)`` returns a ``PosixPath``): each driver lives in
a module of its own and registers itself by its :attr:`Driver.name`, so
nothing here branches on the driver's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import TypeVar

from gevent import monkey

__all__ = ["Channel", "Driver", "Empty", "EventLike", "Sleeper", "gevent_active"]

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


class Sleeper(Protocol):
    def sleep(self, seconds: float) -> bool:
        """Sleep; :returns: True if :meth:`interrupt` cut it short (or had)."""

    def interrupt(self) -> None:
        """End the current and every later :meth:`sleep` at once."""


def gevent_active() -> bool:
    """True when the process runs on gevent (gunicorn's gevent worker patched it)."""
    return bool(monkey.is_module_patched("socket"))


class Driver:
    """Concurrency primitives for one process, fixed at start-up.

    ``Driver(name)`` returns the driver registered under ``name``
    (``"gevent"`` or ``"threading"``); ``Driver()`` picks gevent when the
    process is monkey-patched, else threads.

    :raises ValueError: no driver has that name.
    """

    #: The registry key, set by each driver class.
    name: ClassVar[str]
    _drivers: ClassVar[dict[str, type[Driver]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a driver; a test double without a name is not
            Driver._drivers[cls.name] = cls

    def __new__(cls, name: str | None = None) -> Driver:
        if cls is Driver:
            name = name or ("gevent" if gevent_active() else "threading")
            if name not in Driver._drivers:
                raise ValueError(f"unknown concurrency driver {name!r}")
            cls = Driver._drivers[name]
        return super().__new__(cls)

    def event(self) -> EventLike:
        """A new event (called on the hot path: no lookup beyond the class)."""
        raise NotImplementedError

    def sleeper(self) -> Sleeper:
        """A sleep that another greenlet or thread can cut short."""
        raise NotImplementedError

    def spawn(self, fn: Callable[..., object], *args: object) -> object:
        """Run ``fn(*args)`` concurrently (a greenlet, or a daemon thread)."""
        raise NotImplementedError

    def spawn_native(self, fn: Callable[..., object], *args: object) -> object:
        """Run a *blocking* ``fn`` on a real OS thread, never on the hub."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Sleep, letting other greenlets or threads run."""
        raise NotImplementedError

    def channel(self, maxsize: int, *, native_producer: bool) -> Channel[Any]:
        """A bounded hand-off to the current (consumer) context.

        :param native_producer: the producer runs on :meth:`spawn_native`.
        """
        raise NotImplementedError
