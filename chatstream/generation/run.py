"""The run loop: one generation's adapter tokens, framed once, into its stream.

Each token becomes one SSE ``newToken`` event (framed here, once, so replay
and every reader cost no re-encoding) appended to the stream's writer. The
loop stops at the adapter's :class:`~chatstream.adapters.base.Finish`, at
``MAX_EVENTS`` (``length``), or at a cancel; then it closes the adapter and
writes the terminal event (:mod:`.outcomes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .. import event_ids
from .. import metrics
from .. import sse
from ..adapters.base import Adapter
from ..adapters.base import Finish
from ..adapters.base import GenerationRequest
from ..concurrency import Driver
from ..store import StreamWriter
from .outcomes import Outcome
from .outcomes import terminal
from .pacing import StartPacer

__all__ = ["YIELD_EVERY", "CancelHook", "Generation", "run"]

log = logging.getLogger("chatstream.generation")

#: Hand the hub to readers at least this often when a model never blocks.
YIELD_EVERY = 32


class CancelHook:
    """What a stream calls on cancel: close the generation's adapter.

    A stream keeps its cancel callbacks until it expires, and a generation
    holds its stream's writer. Were the callback to hold the generation, the
    two would hold each other and only the cycle collector could free them.
    So the stream holds this small hook, which holds the adapter only while
    it runs: reference counting frees an ended generation at once, and its
    stream when the store lets go of it.
    """

    __slots__ = ("adapter",)

    def __init__(self, adapter: Adapter) -> None:
        self.adapter: Adapter | None = adapter

    def __call__(self, reason: str) -> None:
        adapter = self.adapter
        if adapter is not None:
            adapter.close()

    def release(self) -> None:
        """The run has ended (and closed the adapter): let go of it."""
        self.adapter = None


class Generation:
    """One running generation: its stream's writer, its adapter and request.

    Register :attr:`cancel_hook` with the writer, never a callable holding
    the generation itself (see :class:`CancelHook`).
    """

    __slots__ = (
        "writer",
        "adapter",
        "cancel_hook",
        "request",
        "started",
        "stream_id",
        "client",
        "__weakref__",
    )

    def __init__(
        self, writer: StreamWriter, adapter: Adapter, request: GenerationRequest, client: str | None
    ) -> None:
        self.client = client
        self.writer = writer
        self.adapter = adapter
        self.cancel_hook = CancelHook(adapter)
        self.request = request
        self.started = time.monotonic()
        self.stream_id = writer.stream_id


def run(
    generation: Generation,
    driver: Driver,
    max_events: int,
    done: Callable[[Generation], None],
    pacer: StartPacer,
) -> None:
    """Run ``generation`` to its end and write its terminal event.

    :param max_events: events per stream, the terminal one included.
    :param done: called once the adapter is closed, before the terminal
        event is written (the runner forgets the generation there).
    :param pacer: holds the start while the worker is behind (:mod:`.pacing`).
    """
    writer, adapter = generation.writer, generation.adapter
    seq = 0
    scope = event_ids.scope(generation.stream_id)  # ids name their stream
    first_token_at: float | None = None
    limit = max_events - 1  # room for the terminal event
    finish = Finish("stop")
    failure: BaseException | None = None
    entered = False
    try:
        pacer.enter()
        entered = True
        # Cancelled while it waited to start: the adapter never runs.
        started = writer.cancel_reason is None
        for item in adapter.stream(generation.request) if started else ():
            if isinstance(item, Finish):
                finish = item
                break
            if not item:
                continue
            if seq >= limit:
                finish = Finish("length")
                break
            seq += 1
            if seq == 1:
                first_token_at = time.monotonic()
            writer.append([sse.encode_token(item, seq, scope)])
            if seq % YIELD_EVERY == 0:
                driver.sleep(0)
            if writer.cancel_reason is not None:
                break
    except Exception as exc:  # becomes an ``error`` event, never re-raised
        failure = exc
    finally:
        try:
            adapter.close()
        except Exception:  # closing must not hide the real outcome
            log.exception("adapter close failed")
        generation.cancel_hook.release()
        if entered:
            pacer.leave()
        done(generation)
    outcome = terminal(writer.cancel_reason, finish, failure, seq + 1, scope)
    writer.append([outcome.frame], final=True)
    _report(generation, outcome, seq, first_token_at)


def _report(
    generation: Generation, outcome: Outcome, tokens: int, first_token_at: float | None
) -> None:
    """Metrics and one log line for an ended generation."""
    ended = time.monotonic()
    metrics.stream_finished(
        outcome.reason,
        tokens=tokens,
        ttft_s=None if first_token_at is None else first_token_at - generation.started,
        duration_s=ended - generation.started,
        error_code=outcome.error_code,
    )
    log.info(
        "stream ended",
        extra={
            "stream_id": generation.stream_id[:8],
            "reason": outcome.error_code or outcome.reason,
            "tokens": tokens,
            "duration_ms": round((ended - generation.started) * 1000),
        },
    )
