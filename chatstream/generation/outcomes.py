"""How a generation ends: its terminal event, and why a stream is cancelled.

The runner is the stream's only writer, so it alone writes the terminal
event, exactly once: ``end`` (``stop`` | ``length`` | ``cancelled``) or
``error``. Nothing is ever raised into the WSGI server: an exception from the
adapter becomes an ``error`` event, and one that is not a
:class:`~chatstream.errors.ChatstreamError` leaks no detail to the reader.
"""

from __future__ import annotations

import logging
from typing import Any
from typing import Literal
from typing import NamedTuple

from .. import sse
from ..adapters.base import Finish
from ..errors import ChatstreamError
from ..errors import GenerationInterrupted
from ..errors import GenerationTimeout

__all__ = ["CANCEL_ERRORS", "CancelReason", "Outcome", "terminal"]

log = logging.getLogger("chatstream.generation")

#: Why a stream was asked to stop: a DELETE, no reader within its grace
#: period, the generation timeout, the store gone, the server shutting down,
#: the Redis store closing the stream of a process it judged dead (stalled).
CancelReason = Literal[
    "client", "no_reader", "timeout", "store_unavailable", "shutdown", "interrupted"
]

#: How a cancel reason ends the stream: ``end`` with ``cancelled``, or an error.
CANCEL_ERRORS: dict[str, ChatstreamError] = {
    "timeout": GenerationTimeout("The model took too long; the answer was cut."),
    "store_unavailable": GenerationInterrupted(
        "The stream store became unreachable; please retry.", code="store_unavailable"
    ),
    "shutdown": GenerationInterrupted(
        "The server is restarting; please retry.", code="server_shutdown"
    ),
    "interrupted": GenerationInterrupted("The answer was interrupted; please retry."),
}


class Outcome(NamedTuple):
    """A generation's terminal event and what the metrics and log call it.

    :param frame: the framed ``end`` or ``error`` event.
    :param reason: ``stop``, ``length``, ``cancelled`` or ``error``.
    :param error_code: the error's code when ``reason`` is ``error``.
    """

    frame: bytes
    reason: str
    error_code: str | None


def terminal(
    cancel_reason: str | None,
    finish: Finish,
    failure: BaseException | None,
    event_id: int,
    scope: str = "",
) -> Outcome:
    """The outcome of a generation that stopped for the given cause.

    :param cancel_reason: the stream's cancel reason, if it was cancelled
        (a :data:`CancelReason`; a store may relay one it got from elsewhere).
    :param finish: the adapter's last item (``Finish("stop")`` if none).
    :param failure: what the adapter raised, if it did.
    :param event_id: the terminal event's id.
    :param scope: the stream's id tag (:mod:`chatstream.event_ids`).
    """
    if cancel_reason is not None:
        error = CANCEL_ERRORS.get(cancel_reason)
        if error is None:
            # ``reason`` says who cancelled (``client``: a DELETE; ``no_reader``:
            # nobody came back within the grace), so a page can say so honestly.
            cancelled = {"finish_reason": "cancelled", "reason": cancel_reason}
            frame = sse.encode_json(cancelled, event="end", id=event_id, scope=scope)
            return Outcome(frame, "cancelled", None)
        failure = error
    if failure is not None:
        if not isinstance(failure, ChatstreamError):
            log.error("generation failed", exc_info=failure)
            failure = ChatstreamError("The model failed to answer.", code="generation_failed")
        frame = sse.encode_json(failure.to_dict(), event="error", id=event_id, scope=scope)
        return Outcome(frame, "error", failure.code)
    payload: dict[str, Any] = {"finish_reason": finish.reason}
    if finish.usage:
        payload["usage"] = dict(finish.usage)
    frame = sse.encode_json(payload, event="end", id=event_id, scope=scope)
    return Outcome(frame, finish.reason, None)
