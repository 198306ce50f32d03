"""Turn a callback-style token producer into an adapter iterator.

Many model clients (LangChain's ``on_llm_new_token`` callbacks among them)
*push* tokens by calling a function; chatstream's runner *pulls* them from an
iterator. The bridge runs the producer concurrently and hands each token over
a bounded channel:

* tokens, the end and an error travel producer -> consumer in order; the
  producer's exception is raised in the consumer;
* cancellation travels consumer -> producer: :meth:`CallbackBridge.close`
  closes the channel, and the producer's next ``on_token`` raises
  :class:`~chatstream.errors.Cancelled` (a producer can also poll
  ``callbacks.cancelled``);
* the buffer is bounded, so a fast producer waits for a slow consumer.

``blocking=True`` runs the producer on a real OS thread (for code that blocks
without yielding to gevent); otherwise it runs as a greenlet (or a thread
under the threading driver). This is the only module that knows about callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from ..concurrency import Channel
from ..concurrency import Driver
from ..errors import Cancelled
from .base import Finish
from .base import FinishReason
from .base import GenerationRequest

__all__ = ["CallbackBridge", "Callbacks", "Producer"]


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Callbacks:
    """What the producer calls. Safe to call from the producer's thread."""

    def __init__(self, channel: Channel[Any]) -> None:
        self._channel = channel
        self._done = False
        self.cancelled = False

    def on_token(self, text: str) -> None:
        """Hand one token to the consumer (waits while the buffer is full).

        :raises Cancelled: the consumer has gone; stop producing.
        """
        if self.cancelled:
            raise Cancelled("generation cancelled")
        if text:
            self._channel.put(text)

    def on_end(
        self, finish_reason: FinishReason = "stop", usage: Mapping[str, int] | None = None
    ) -> None:
        """Signal a normal end (further calls are ignored)."""
        if not self._done:
            self._done = True
            self._channel.put(Finish(finish_reason, usage))

    def on_error(self, exc: BaseException) -> None:
        """Signal a failure; the consumer raises ``exc``."""
        if not self._done:
            self._done = True
            self._channel.put(_Failure(exc))


Producer = Callable[[GenerationRequest, Callbacks], None]


class CallbackBridge:
    """An :class:`~chatstream.adapters.base.Adapter` over a callback producer.

    :param producer: ``producer(request, callbacks)``; it calls
        ``callbacks.on_token`` per token and returns (or raises) when done.
        Returning without ``on_end`` counts as ``on_end("stop")``.
    :param blocking: run the producer on a native thread.
    :param maxsize: tokens buffered before the producer waits.
    :param driver: concurrency driver (default: the request's).
    """

    def __init__(
        self,
        producer: Producer,
        *,
        blocking: bool = False,
        maxsize: int = 256,
        driver: Driver | None = None,
    ) -> None:
        self._producer = producer
        self._blocking = blocking
        self._maxsize = maxsize
        self._driver = driver
        self._channel: Channel[Any] | None = None
        self._callbacks: Callbacks | None = None
        self._closed = False

    def _run(self, request: GenerationRequest, callbacks: Callbacks) -> None:
        try:
            self._producer(request, callbacks)
        except Cancelled:
            return
        except BaseException as exc:  # handed to the consumer, not swallowed
            if callbacks.cancelled:
                return
            try:
                callbacks.on_error(exc)
            except Cancelled:
                return
            return
        try:
            callbacks.on_end()
        except Cancelled:
            return

    def stream(self, request: GenerationRequest) -> Iterator[str | Finish]:
        driver = self._driver or request.driver
        channel = driver.channel(self._maxsize, native_producer=self._blocking)
        callbacks = Callbacks(channel)
        self._channel, self._callbacks = channel, callbacks
        if self._closed:
            raise Cancelled("generation cancelled")
        spawn = driver.spawn_native if self._blocking else driver.spawn
        spawn(self._run, request, callbacks)
        try:
            while True:
                try:
                    item = channel.get()
                except Cancelled:  # closed by :meth:`close`: stop quietly
                    return
                if isinstance(item, str):
                    yield item
                elif isinstance(item, Finish):
                    yield item
                    return
                else:
                    raise item.exc
        finally:
            self.close()

    def close(self) -> None:
        """Cancel the producer and wake a consumer waiting for a token."""
        self._closed = True
        if self._callbacks is not None:
            self._callbacks.cancelled = True
        if self._channel is not None:
            self._channel.close()
