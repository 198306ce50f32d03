"""The LangChain callback handler: model tokens to the bridge, finish and usage recorded.

Split from :mod:`chatstream.adapters.langchain_chat` (which runs the
runnables); see its docstring for why cancellation raises :class:`StopRun`, a
``BaseException``, and why ``on_llm_end``/``on_llm_error`` only record.
LangChain is imported only when :func:`handler_class` is first called.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from ..errors import Cancelled
from ..errors import ConfigError
from .base import FinishReason
from .base import Message
from .bridge import Callbacks

__all__ = ["INSTALL_HINT", "StopRun", "handler_class", "require", "to_langchain"]

INSTALL_HINT = "pip install 'chatstream[langchain]'"

# Finish reasons as providers spell them (OpenAI, Anthropic, Gemini).
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
}


class StopRun(BaseException):
    """Raised inside LangChain to stop a cancelled run (see the module docstring)."""


def require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"CHATSTREAM_ADAPTER=langchain needs {what}: {INSTALL_HINT} ({exc})"
        ) from exc


def to_langchain(messages: Sequence[Message]) -> list[Any]:
    """Convert chatstream messages to LangChain message objects."""
    lc = require("langchain_core.messages", "langchain-core")
    kinds = {
        "system": lc.SystemMessage,
        "user": lc.HumanMessage,
        "assistant": lc.AIMessage,
    }
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _usage(response: Any) -> dict[str, int] | None:
    """A model call's token usage in OpenAI's names.

    From each generation's ``usage_metadata`` (streamed chat models), else
    from ``llm_output["token_usage"]`` (one total for the call).
    """
    totals: dict[str, int] | None = None
    for generation in (g for gens in response.generations for g in gens):
        meta = getattr(getattr(generation, "message", None), "usage_metadata", None)
        if meta:
            usage = {
                "prompt_tokens": int(meta.get("input_tokens", 0)),
                "completion_tokens": int(meta.get("output_tokens", 0)),
                "total_tokens": int(meta.get("total_tokens", 0)),
            }
            totals = _add(totals, usage)
    if totals is not None:
        return totals
    llm_output = response.llm_output or {}
    reported = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(reported, Mapping) and "completion_tokens" in reported:
        return {k: int(reported.get(k) or 0) for k in _USAGE_KEYS}
    return None


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _add(a: dict[str, int] | None, b: dict[str, int]) -> dict[str, int]:
    return b if a is None else {k: a[k] + b[k] for k in _USAGE_KEYS}


@functools.cache
def handler_class() -> type[Any]:
    """The callback handler type, defined once LangChain is importable."""
    base = require("langchain_core.callbacks", "langchain-core").BaseCallbackHandler

    class TokenHandler(base):  # type: ignore[misc, valid-type]
        """Feeds LangChain's tokens to the bridge; records finish reason and usage."""

        # Let our exceptions propagate instead of being logged and swallowed.
        raise_error = True

        def __init__(self, callbacks: Callbacks) -> None:
            super().__init__()
            self.callbacks = callbacks
            self.tokens = 0
            self.reason: FinishReason = "stop"
            self.usage: dict[str, int] | None = None
            self._streamed: set[Any] = set()  # ids of model runs that sent tokens

        def _send(self, text: str) -> None:
            try:
                self.callbacks.on_token(text)
            except Cancelled:
                raise StopRun from None
            if text:
                self.tokens += 1

        def on_llm_new_token(
            self, token: Any, *, chunk: Any = None, run_id: Any = None, **kwargs: Any
        ) -> None:
            self._streamed.add(run_id)
            # Content may be a list of blocks (Anthropic, output_version="v1").
            self._send(token if isinstance(token, str) else getattr(chunk, "text", ""))

        def on_llm_end(self, response: Any, *, run_id: Any = None, **kwargs: Any) -> None:
            generations = [g for gens in response.generations for g in gens]
            if run_id not in self._streamed:
                # A model without ``_stream`` answers in one piece: one token.
                for generation in generations:
                    self._send(generation.text)
            for generation in generations:
                info = generation.generation_info or {}
                message = getattr(generation, "message", None)
                meta = getattr(message, "response_metadata", None) or {}
                reason = info.get("finish_reason") or meta.get("finish_reason")
                if reason:
                    self.reason = _FINISH.get(str(reason), "stop")
            usage = _usage(response)
            if usage is not None:
                self.usage = _add(self.usage, usage)

        def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
            # The run raises the error itself unless the chain handles it.
            pass

    return TokenHandler
