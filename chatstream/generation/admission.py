"""Admission: may this request start a generation on this worker, now?

Checked in this order, so the answer does not depend on the load: a known
model, options the adapter accepts, a worker not shutting down, a free slot
(``MAX_STREAMS``), and a free slot for this client
(``MAX_STREAMS_PER_CLIENT``, 0: no cap).

Config keys: ``MODELS``, ``MODEL``, ``MAX_STREAMS``, ``MAX_STREAMS_PER_CLIENT``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from ..adapters.base import AdapterFactory
from ..errors import BadRequest
from ..errors import Overloaded
from ..errors import TooManyRequests

__all__ = ["Admission"]


class Admission:
    """The gate in front of :meth:`~.runner.Runner.start` and its per-client counts.

    :param config: the app config (keys in the module docstring).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.models: Sequence[str] = config["MODELS"]
        self.default_model: str = config["MODEL"]
        self.max_streams: int = config["MAX_STREAMS"]
        self.max_per_client: int = config.get("MAX_STREAMS_PER_CLIENT", 0)
        #: Running generations per client key.
        self.per_client: Counter[str] = Counter()
        self.accepting = True

    def check(
        self,
        model: str | None,
        options: Mapping[str, Any] | None,
        factory: AdapterFactory,
        *,
        running: int,
        client: str | None,
    ) -> tuple[str, Mapping[str, Any]]:
        """Check a request (count it with :meth:`claim` once it runs).

        :param running: generations running on this worker now.
        :param client: who asks (the client address); ``None``: no per-client cap.
        :returns: the model and the options as the factory checked them.
        :raises BadRequest: unknown model or bad options.
        :raises Overloaded: shutting down, or ``MAX_STREAMS`` running already.
        :raises TooManyRequests: ``client`` runs ``MAX_STREAMS_PER_CLIENT`` already.
        """
        model = model or self.default_model
        if model not in self.models:
            raise BadRequest(
                f"Unknown model {model!r}; choose one of: {', '.join(self.models)}.",
                code="unknown_model",
            )
        checked = factory.check_options(options or {})
        if not self.accepting:
            raise Overloaded("The server is shutting down; try again.", retry_after=1)
        if running >= self.max_streams:
            raise Overloaded("Too many answers are being generated; try again shortly.")
        if client is not None and 0 < self.max_per_client <= self.per_client[client]:
            raise TooManyRequests(
                f"You already have {self.max_per_client} answers being generated; "
                "wait for one to finish or cancel one.",
                code="too_many_streams",
            )
        return model, checked

    def claim(self, client: str | None) -> None:
        """A generation admitted for ``client`` has started."""
        if client is not None:
            self.per_client[client] += 1

    def release(self, client: str | None) -> None:
        """A generation admitted for ``client`` has ended."""
        if client is not None:
            self.per_client[client] -= 1
            if self.per_client[client] <= 0:
                del self.per_client[client]

    def close(self) -> None:
        """Refuse every later request (graceful shutdown starts)."""
        self.accepting = False
