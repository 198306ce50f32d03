"""The generation runner: adapter tokens -> framed events -> stream store.

``view -> runner -> adapter -> store -> events view``: a view calls
:meth:`Runner.start`, which checks the request, creates a stream and runs the
adapter concurrently; each token is framed once as an SSE ``newToken`` event
and appended to the store. The runner is the stream's only writer, so it
alone writes the terminal event: ``end`` (stop | length | cancelled) or
``error``. Nothing is ever raised into the WSGI server.

A janitor task (one per runner, alive while generations run) enforces the
lifecycle limits: the overall generation timeout and the attach and detach
grace periods. (The store expires finished streams itself.)

Config keys: ``MAX_STREAMS``, ``MAX_EVENTS``, ``GENERATION_TIMEOUT_S``,
``ATTACH_GRACE_S``, ``DETACH_GRACE_S``, ``SWEEP_S``, ``MODELS``, ``MAX_STREAMS_PER_CLIENT``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from . import metrics
from . import sse
from .adapters.base import AdapterFactory
from .adapters.base import Finish
from .adapters.base import GenerationRequest
from .adapters.base import Message
from .concurrency import Driver
from .errors import BadRequest
from .errors import ChatstreamError
from .errors import GenerationInterrupted
from .errors import GenerationTimeout
from .errors import NotFound
from .errors import Overloaded
from .errors import TooManyRequests
from .streams import Presence
from .streams import StreamStore
from .streams import StreamWriter

log = logging.getLogger(__name__)

#: Hand the hub to readers at least this often when a model never blocks.
YIELD_EVERY = 32

#: How a cancel reason ends the stream: ``end`` with ``cancelled``, or an error.
CANCEL_ERRORS: dict[str, ChatstreamError] = {
    "timeout": GenerationTimeout("The model took too long; the answer was cut."),
    "store_unavailable": GenerationInterrupted(
        "The stream store became unreachable; please retry.", code="store_unavailable"
    ),
    "shutdown": GenerationInterrupted(
        "The server is restarting; please retry.", code="server_shutdown"
    ),
    # The Redis store closed the stream: this process was judged dead (stalled).
    "interrupted": GenerationInterrupted("The answer was interrupted; please retry."),
}


class _Generation:
    __slots__ = ("writer", "adapter", "request", "started", "stream_id", "client")

    def __init__(
        self, writer: StreamWriter, adapter: Any, request: GenerationRequest, client: str | None
    ) -> None:
        self.client = client
        self.writer = writer
        self.adapter = adapter
        self.request = request
        self.started = time.monotonic()
        self.stream_id = writer.stream_id


class Runner:
    """Starts generations and owns them until their stream ends.

    :param store: where events go.
    :param factory: makes one adapter per generation.
    :param driver: concurrency primitives.
    :param config: the app config (keys in the module docstring).
    """

    def __init__(
        self,
        store: StreamStore,
        factory: AdapterFactory,
        driver: Driver,
        config: Mapping[str, Any],
    ) -> None:
        self.store = store
        self.factory = factory
        self.driver = driver
        self.models: Sequence[str] = config["MODELS"]
        self.default_model: str = config["MODEL"]
        self.max_streams: int = config["MAX_STREAMS"]
        self.max_events: int = config["MAX_EVENTS"]
        self.timeout_s: float = config["GENERATION_TIMEOUT_S"]
        self.attach_grace_s: float = config["ATTACH_GRACE_S"]
        self.detach_grace_s: float = config["DETACH_GRACE_S"]
        self.sweep_s: float = config["SWEEP_S"]
        self.running: dict[str, _Generation] = {}
        #: Running generations per client key (``MAX_STREAMS_PER_CLIENT``; 0: no cap).
        self.per_client: Counter[str] = Counter()
        self.max_per_client: int = config.get("MAX_STREAMS_PER_CLIENT", 0)
        self._janitor_alive = False
        self.accepting = True

    # -- starting -----------------------------------------------------------

    def start(
        self,
        messages: Sequence[Message],
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        client: str | None = None,
    ) -> str:
        """Check the request, create its stream and start generating.

        :param client: who asks (the client address), for the per-client cap.
        :returns: the new stream id.
        :raises BadRequest: unknown model or bad options.
        :raises Overloaded: this worker runs ``MAX_STREAMS`` generations already.
        :raises TooManyRequests: ``client`` runs ``MAX_STREAMS_PER_CLIENT`` already.
        """
        model = model or self.default_model
        if model not in self.models:
            raise BadRequest(
                f"Unknown model {model!r}; choose one of: {', '.join(self.models)}.",
                code="unknown_model",
            )
        checked = self.factory.check_options(options or {})
        if not self.accepting:
            raise Overloaded("The server is shutting down; try again.", retry_after=1)
        if len(self.running) >= self.max_streams:
            raise Overloaded("Too many answers are being generated; try again shortly.")
        if client is not None and 0 < self.max_per_client <= self.per_client[client]:
            raise TooManyRequests(
                f"You already have {self.max_per_client} answers being generated; "
                "wait for one to finish or cancel one.",
                code="too_many_streams",
            )
        request = GenerationRequest(messages=list(messages), model=model, options=checked)
        writer = self.store.create()
        generation = _Generation(writer, self.factory(), request, client)
        writer.on_cancel(lambda _reason: generation.adapter.close())
        self.running[writer.stream_id] = generation
        metrics.stream_started()
        if client is not None:
            self.per_client[client] += 1
        self.driver.spawn(self._run, generation)
        if not self._janitor_alive:
            self._janitor_alive = True
            self.driver.spawn(self._janitor)
        return writer.stream_id

    def cancel(self, stream_id: str, reason: str = "client") -> bool:
        """Stop a generation; readers get ``end`` with ``cancelled``.

        :returns: False when the stream had already ended.
        :raises NotFound: unknown or expired stream.
        """
        return self.store.cancel(stream_id, reason)

    # -- running ------------------------------------------------------------

    def _run(self, generation: _Generation) -> None:
        writer, adapter = generation.writer, generation.adapter
        seq = 0
        first_token_at: float | None = None
        limit = self.max_events - 1  # room for the terminal event
        finish = Finish("stop")
        failure: BaseException | None = None
        try:
            for item in adapter.stream(generation.request):
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
                writer.append([sse.encode_token(item, seq)])
                if seq % YIELD_EVERY == 0:
                    self.driver.sleep(0)
                if writer.cancel_reason is not None:
                    break
        except Exception as exc:  # becomes an ``error`` event, never re-raised
            failure = exc
        finally:
            try:
                adapter.close()
            except Exception:  # closing must not hide the real outcome
                log.exception("adapter close failed")
            self.running.pop(generation.stream_id, None)
            self._release(generation.client)
        frame, reason, error_code = self._terminal(writer.cancel_reason, finish, failure, seq + 1)
        writer.append([frame], final=True)
        ended = time.monotonic()
        metrics.stream_finished(
            reason,
            tokens=seq,
            ttft_s=None if first_token_at is None else first_token_at - generation.started,
            duration_s=ended - generation.started,
            error_code=error_code,
        )
        log.info(
            "stream ended",
            extra={
                "stream_id": generation.stream_id[:8],
                "reason": error_code or reason,
                "tokens": seq,
                "duration_ms": round((ended - generation.started) * 1000),
            },
        )

    def _release(self, client: str | None) -> None:
        if client is not None:
            self.per_client[client] -= 1
            if self.per_client[client] <= 0:
                del self.per_client[client]

    @staticmethod
    def _terminal(
        cancel_reason: str | None,
        finish: Finish,
        failure: BaseException | None,
        event_id: int,
    ) -> tuple[bytes, str, str | None]:
        """The terminal frame, the outcome (stop|length|cancelled|error), the error code."""
        if cancel_reason is not None:
            error = CANCEL_ERRORS.get(cancel_reason)
            if error is None:
                frame = sse.encode_json({"finish_reason": "cancelled"}, event="end", id=event_id)
                return frame, "cancelled", None
            failure = error
        if failure is not None:
            if not isinstance(failure, ChatstreamError):
                log.error("generation failed", exc_info=failure)
                failure = ChatstreamError("The model failed to answer.", code="generation_failed")
            frame = sse.encode_json(failure.to_dict(), event="error", id=event_id)
            return frame, "error", failure.code
        payload: dict[str, Any] = {"finish_reason": finish.reason}
        if finish.usage:
            payload["usage"] = dict(finish.usage)
        return sse.encode_json(payload, event="end", id=event_id), finish.reason, None

    # -- lifecycle ----------------------------------------------------------

    def _janitor(self) -> None:
        try:
            while True:
                self.driver.sleep(self.sweep_s)
                self.sweep()
                if not self.running:
                    return
        finally:
            self._janitor_alive = False

    def sweep(self) -> None:
        """Enforce the timeout and the reader grace periods once."""
        now = time.monotonic()
        running = list(self.running.values())
        try:
            presences = self.store.presence_many([g.stream_id for g in running])
        except Exception:  # a store hiccup must not kill the janitor
            log.exception("janitor: cannot read reader presence")
            return
        for generation in running:
            presence = presences.get(generation.stream_id)
            reason = self._overdue(generation, presence, now)
            if reason == "no_reader" and presence is not None:
                log.info(
                    "no_reader cancel: %s %.1f s ago",
                    "last reader seen" if presence.ever_attached else "created, no reader since",
                    presence.idle_s,
                    extra={"stream_id": generation.stream_id[:8]},
                )
            if reason:
                try:
                    self.store.cancel(generation.stream_id, reason)
                except NotFound:
                    continue
                except Exception:
                    log.exception("janitor: cannot cancel a stream")

    def _overdue(
        self, generation: _Generation, presence: Presence | None, now: float
    ) -> str | None:
        if now - generation.started > self.timeout_s:
            return "timeout"
        if presence is None or presence.readers:
            return None
        grace = self.detach_grace_s if presence.ever_attached else self.attach_grace_s
        return "no_reader" if presence.idle_s > grace else None

    def shutdown(self) -> None:
        """Refuse new generations (graceful shutdown starts)."""
        self.accepting = False
