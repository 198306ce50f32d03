"""Any OpenAI-compatible chat server through the official ``openai`` SDK.

``OPENAI_BASE_URL`` points it at OpenAI, Ollama, vLLM, llama.cpp's server and
the like. Streams with ``stream=True`` and ``include_usage``. :meth:`close`
closes the HTTP stream (the upstream stops generating, no more tokens are
paid for). SDK errors become :mod:`chatstream.errors` upstream errors with a
clear code; 429 and 5xx are retried by the SDK first (``max_retries``).

Config keys: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_TIMEOUT_S``,
``OPENAI_MAX_RETRIES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import openai

from ..errors import UpstreamAuthError
from ..errors import UpstreamBadRequest
from ..errors import UpstreamDropped
from ..errors import UpstreamError
from ..errors import UpstreamRateLimited
from ..errors import UpstreamTimeout
from ..errors import UpstreamUnavailable
from .base import Finish
from .base import FinishReason
from .base import GenerationRequest
from .base import reject_options

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


def _detail(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _is_transport_error(exc: Exception) -> bool:
    # The SDK's HTTP stack (httpx, or httpx2 in openai 3.x) may surface raw
    # transport errors while a stream body is read; match them by module so
    # the adapter does not pin one transport package.
    module = type(exc).__module__
    return module.split(".", 1)[0] in ("httpx", "httpx2", "httpcore", "httpcore2")


def translate(exc: Exception, *, streaming: bool) -> UpstreamError:
    """Map an SDK (or transport) error to a chatstream upstream error.

    :param streaming: the error came after the first chunk (a drop, not a refusal).
    """
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimeout("The model server did not answer in time.")
    if isinstance(exc, openai.APIConnectionError) or _is_transport_error(exc):
        if streaming:
            return UpstreamDropped("The connection to the model server dropped mid-answer.")
        return UpstreamUnavailable("The model server cannot be reached.")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamAuthError(f"The model server refused the API key: {_detail(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return UpstreamRateLimited(
            f"The model server is rate limiting; try again later: {_detail(exc)}"
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return UpstreamUnavailable(
                f"The model server failed (HTTP {exc.status_code}): {_detail(exc)}"
            )
        return UpstreamBadRequest(
            f"The model server rejected the request (HTTP {exc.status_code}): {_detail(exc)}"
        )
    if isinstance(exc, openai.APIError):  # an ``error`` object inside the stream
        return UpstreamError(f"The model server reported an error: {_detail(exc)}")
    return UpstreamError(f"Unexpected upstream failure: {type(exc).__name__}")


class OpenAIChatAdapter:
    """One streamed chat completion."""

    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client
        self._stream: Any = None
        self._closed = False

    def stream(self, request: GenerationRequest) -> Iterator[str | Finish]:
        try:
            self._stream = self._client.chat.completions.create(  # type: ignore[call-overload]
                model=request.model,
                messages=list(request.messages),
                stream=True,
                stream_options={"include_usage": True},
            )
        except Exception as exc:
            if self._closed:
                return
            if isinstance(exc, openai.APIError) or _is_transport_error(exc):
                raise translate(exc, streaming=False) from exc
            raise
        reason: FinishReason = "stop"
        usage: dict[str, int] | None = None
        try:
            if self._closed:
                return
            for chunk in self._stream:
                if chunk.usage is not None:
                    usage = {
                        "prompt_tokens": chunk.usage.prompt_tokens,
                        "completion_tokens": chunk.usage.completion_tokens,
                        "total_tokens": chunk.usage.total_tokens,
                    }
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
                    if choice.finish_reason:
                        reason = _FINISH.get(choice.finish_reason, "stop")
        except Exception as exc:
            if self._closed:  # our own close() interrupted the read
                return
            if isinstance(exc, openai.APIError) or _is_transport_error(exc):
                raise translate(exc, streaming=True) from exc
            raise
        finally:
            self._stream.close()
        yield Finish(reason, usage)

    def close(self) -> None:
        """Close the HTTP stream now; safe from another greenlet or thread."""
        self._closed = True
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # already closed or mid-read: nothing more to do
                pass


class OpenAIChatFactory:
    """Holds one SDK client (and its connection pool) per process."""

    name = "openai"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.client = openai.OpenAI(
            api_key=config.get("OPENAI_API_KEY") or "unset",
            base_url=config.get("OPENAI_BASE_URL") or None,
            timeout=openai.Timeout(config["OPENAI_TIMEOUT_S"], connect=10.0),
            max_retries=config["OPENAI_MAX_RETRIES"],
        )

    def __call__(self) -> OpenAIChatAdapter:
        return OpenAIChatAdapter(self.client)

    check_options = staticmethod(reject_options)


def factory(config: Mapping[str, Any]) -> OpenAIChatFactory:
    return OpenAIChatFactory(config)
