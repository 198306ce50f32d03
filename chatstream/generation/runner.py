"""The runner: starts generations and owns them until their stream ends.

``view -> runner -> adapter -> store -> events view``: a view calls
:meth:`Runner.start`, which admits the request (:mod:`.admission`), creates
a stream and runs the adapter concurrently (:mod:`.run`), once the pacer
(:mod:`.pacing`) lets it start; the janitor (:mod:`.janitor`) cancels what
overstays.

Config keys: ``MAX_EVENTS`` and those of :mod:`.admission`, :mod:`.janitor` and
:mod:`.pacing`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from .. import metrics
from ..adapters.base import AdapterFactory
from ..adapters.base import GenerationRequest
from ..adapters.base import Message
from ..concurrency import Driver
from ..store import StreamStore
from .admission import Admission
from .janitor import Janitor
from .outcomes import CancelReason
from .pacing import StartPacer
from .run import Generation
from .run import run

__all__ = ["Runner"]


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
        self.max_events: int = config["MAX_EVENTS"]
        self.running: dict[str, Generation] = {}
        self.admission = Admission(config)
        self.janitor = Janitor(store, driver, self.running, config)
        self.pacer = StartPacer(driver, config)

    @property
    def max_streams(self) -> int:
        """Generations this worker runs at most (``MAX_STREAMS``)."""
        return self.admission.max_streams

    @max_streams.setter
    def max_streams(self, value: int) -> None:
        self.admission.max_streams = value

    @property
    def per_client(self) -> Counter[str]:
        """Running generations per client key."""
        return self.admission.per_client

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
        model, checked = self.admission.check(
            model, options, self.factory, running=len(self.running), client=client
        )
        request = GenerationRequest(
            messages=list(messages), model=model, options=checked, driver=self.driver
        )
        writer = self.store.create()
        generation = Generation(writer, self.factory(), request, client)
        writer.on_cancel(generation.cancel_hook)
        self.running[writer.stream_id] = generation
        metrics.stream_started()
        self.admission.claim(client)
        self.driver.spawn(run, generation, self.driver, self.max_events, self._done, self.pacer)
        self.janitor.ensure_running()
        return writer.stream_id

    def cancel(self, stream_id: str, reason: CancelReason = "client") -> bool:
        """Stop a generation; readers get ``end`` with ``cancelled``.

        :returns: False when the stream had already ended.
        :raises NotFound: unknown or expired stream.
        """
        return self.store.cancel(stream_id, reason)

    def shutdown(self) -> None:
        """Refuse new generations (graceful shutdown starts); paced ones start now."""
        self.admission.close()
        self.pacer.release_all()

    def _done(self, generation: Generation) -> None:
        self.running.pop(generation.stream_id, None)
        self.admission.release(generation.client)
