"""The offline, deterministic demo model (the default adapter).

It answers with a short markdown document that quotes the prompt, shows a
code block and explains how to switch to a real model, streamed word-piece by
word-piece ``CHATSTREAM_DEMO_DELAY_MS`` apart. No key, no network.

For tests and benchmarks a request may carry ``options``:
``{"tokens": T, "delay_ms": D}`` makes it emit exactly ``T`` tokens, token
``i`` being ``"<i> "``, ``D`` ms apart.

Config keys: ``CHATSTREAM_DEMO_DELAY_MS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from ..concurrency import Sleeper
from ..errors import BadRequest
from .base import Finish
from .base import GenerationRequest

__all__ = ["DemoAdapter", "DemoFactory", "compose_reply", "factory", "word_pieces"]

MAX_TOKENS = 100_000
MAX_DELAY_MS = 10_000
_WORD_PIECE = re.compile(r"\s*\S{1,5}|\s+")

REPLY = """\
## Hello from the demo model

You said:

{quote}

This answer is streamed to you **token by token** over Server-Sent Events. \
The demo model runs offline, so it can only echo and explain:

- your prompt had **{words}** words and **{chars}** characters;
- this is turn **{turn}** of the conversation;
- every piece arrives as a `newToken` event, and the stream closes with `end`.

```python
# Switch to a real model (any OpenAI-compatible server works):
import os
os.environ["OPENAI_API_KEY"] = "sk-..."
os.environ["OPENAI_BASE_URL"] = "https://api.openai.com/v1"  # or Ollama, vLLM...
os.environ["CHATSTREAM_MODEL"] = "gpt-4o-mini"
```

Restart the server with those variables set and ask again.
"""


def word_pieces(text: str) -> list[str]:
    """Split text into word pieces whose concatenation is ``text``."""
    return _WORD_PIECE.findall(text)


def compose_reply(request: GenerationRequest) -> str:
    """The demo's answer to the last user message."""
    prompt = request.messages[-1]["content"]
    quote = "\n".join("> " + line for line in prompt.splitlines() or [""])
    turn = sum(1 for m in request.messages if m["role"] == "user")
    return REPLY.format(quote=quote, words=len(prompt.split()), chars=len(prompt), turn=turn)


class DemoAdapter:
    """One demo generation; :meth:`close` interrupts its delay at once."""

    def __init__(self, delay_ms: int) -> None:
        self._delay_s = delay_ms / 1000
        self._sleeper: Sleeper | None = None
        self._closed = False

    def stream(self, request: GenerationRequest) -> Iterator[str | Finish]:
        # Set before reading ``_closed``; close() sets that before reading this.
        sleeper = self._sleeper = request.driver.sleeper()
        options = request.options
        if "tokens" in options:
            pieces: Any = (f"{i} " for i in range(options["tokens"]))
            count = options["tokens"]
        else:
            pieces = word_pieces(compose_reply(request))
            count = len(pieces)
        delay = options.get("delay_ms", self._delay_s * 1000) / 1000
        for index, piece in enumerate(pieces):
            if index and delay and sleeper.sleep(delay):
                return  # close() cut the delay short: cancel is prompt
            if self._closed:
                return
            yield piece
        prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count,
            "total_tokens": prompt_tokens + count,
        }
        yield Finish("stop", usage)

    def close(self) -> None:
        self._closed = True
        if self._sleeper is not None:
            self._sleeper.interrupt()


def _bounded_int(options: Mapping[str, Any], key: str, high: int) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise BadRequest(
            f"options.{key} must be an integer from 0 to {high}.",
            code="invalid_options",
        )
    return value


class DemoFactory:
    """Makes :class:`DemoAdapter` instances."""

    name = "demo"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.delay_ms = int(config["DEMO_DELAY_MS"])

    def __call__(self) -> DemoAdapter:
        return DemoAdapter(self.delay_ms)

    def check_options(self, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """:raises BadRequest: unknown option or value out of bounds."""
        unknown = set(options) - {"tokens", "delay_ms"}
        if unknown:
            raise BadRequest(
                f"Unknown option(s) for the demo model: {', '.join(sorted(unknown))}.",
                code="invalid_options",
            )
        checked: dict[str, int] = {}
        for key, high in (("tokens", MAX_TOKENS), ("delay_ms", MAX_DELAY_MS)):
            value = _bounded_int(options, key, high)
            if value is not None:
                checked[key] = value
        return checked


def factory(config: Mapping[str, Any]) -> DemoFactory:
    return DemoFactory(config)
