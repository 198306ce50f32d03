"""Upstream failures as chatstream errors: the one translation every adapter uses.

The openai adapter and the LangChain adapter (whose ``ChatOpenAI`` raises the
same ``openai`` SDK errors) both map what the SDK or its HTTP stack raises to
the :class:`~chatstream.errors.UpstreamError` codes readers see in ``error``
events. Protocol violations found while reading a stream (a line or a whole
response over its cap, a data line that is not JSON) have codes of their own,
so an operator can tell a hostile or broken upstream from a dropped one::

    UpstreamError
    └── UpstreamProtocolError       upstream_protocol_error (a bound was hit, bad shape)
        └── UpstreamInvalidJSON     upstream_invalid_json

These are expected outcomes, not bugs: the runner turns them into an ``error``
event and logs one line, never a traceback.
"""

from __future__ import annotations

import openai

from ..errors import UpstreamAuthError
from ..errors import UpstreamBadRequest
from ..errors import UpstreamDropped
from ..errors import UpstreamError
from ..errors import UpstreamRateLimited
from ..errors import UpstreamTimeout
from ..errors import UpstreamUnavailable

__all__ = [
    "UpstreamInvalidJSON",
    "UpstreamProtocolError",
    "is_transport_error",
    "stream_error",
    "translate",
]

_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2")


class UpstreamProtocolError(UpstreamError):
    """The upstream broke the streaming protocol or one of its size bounds."""

    code = "upstream_protocol_error"


class UpstreamInvalidJSON(UpstreamProtocolError):
    """A ``data:`` line of the upstream's stream is not valid JSON."""

    code = "upstream_invalid_json"


def is_transport_error(exc: BaseException) -> bool:
    """True for a raw error of the SDK's HTTP stack (httpx, or httpx2 in openai 3.x).

    Matched by module so the adapters do not pin one transport package.
    """
    module = type(exc).__module__
    return module.split(".", 1)[0] in _TRANSPORT_MODULES


def _is_transport_timeout(exc: BaseException) -> bool:
    # httpx's ReadTimeout, WriteTimeout, ConnectTimeout and PoolTimeout all
    # derive from TimeoutException; match by name, as above, to pin no package.
    return any(cls.__name__ == "TimeoutException" for cls in type(exc).__mro__)


def detail(exc: openai.APIError) -> str:
    """The upstream's own message for an SDK error, else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def stream_error(message: str) -> UpstreamError:
    """An ``error`` object the upstream sent inside its stream (after some deltas)."""
    return UpstreamError(f"The model server reported an error: {message}")


def translate(exc: BaseException, *, streaming: bool) -> UpstreamError:
    """Map an SDK (or transport) error to a chatstream upstream error.

    :param streaming: the error came after the first chunk (a drop, not a refusal).
    """
    if isinstance(exc, openai.APITimeoutError) or (
        is_transport_error(exc) and _is_transport_timeout(exc)
    ):
        return UpstreamTimeout("The model server did not answer in time.")
    if isinstance(exc, openai.APIConnectionError) or is_transport_error(exc):
        if streaming:
            return UpstreamDropped("The connection to the model server dropped mid-answer.")
        return UpstreamUnavailable("The model server cannot be reached.")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamAuthError(f"The model server refused the API key: {detail(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return UpstreamRateLimited(
            f"The model server is rate limiting; try again later: {detail(exc)}"
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return UpstreamUnavailable(
                f"The model server failed (HTTP {exc.status_code}): {detail(exc)}"
            )
        return UpstreamBadRequest(
            f"The model server rejected the request (HTTP {exc.status_code}): {detail(exc)}"
        )
    if isinstance(exc, openai.APIError):  # an ``error`` object inside the stream
        return stream_error(detail(exc))
    return UpstreamError(f"Unexpected upstream failure: {type(exc).__name__}")
