"""LangChain runnables for the live tests, built on LangChain's own fake models.

gunicorn loads them with ``CHATSTREAM_LANGCHAIN_FACTORY=
tests.live.langchain_factories:factory``; :func:`factory` picks one by model
name, so one server serves every scenario:

* ``echo``: :class:`EchoModel`, a ``GenericFakeChatModel`` that answers
  ``"Echo:"`` and each message as ``type:content``, streamed word by word;
* ``chain``: an LCEL chain (system prompt | ``echo`` | string parser) taking
  the message list, as a user's own chain would;
* ``fail``: :class:`FailingModel` streams ``a b c`` then raises;
* ``gated``: :class:`GatedModel` streams ``GATE_AT`` tokens, waits for the
  file ``<LC_FAKES_DIR>/<prompt>.go``, then would stream up to ``TOTAL``. It
  writes how many tokens it produced to ``<prompt>.produced`` as it goes,
  and ``stopped`` there when its generator is closed.

Under ``CHATSTREAM_LANGCHAIN_BLOCKING=true`` the gated wait blocks the native
thread for real (``time.sleep`` from before gevent patched it); otherwise it
uses the patched, cooperative ``time.sleep``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.outputs import ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.prompts import MessagesPlaceholder
from langchain_core.runnables import RunnablePassthrough

GATE_AT = 3
TOTAL = 1000
FAIL_TOKENS = ("a", " ", "b", " ", "c")


def echo_text(messages: list[BaseMessage]) -> str:
    return "Echo: " + " | ".join(f"{m.type}:{m.content}" for m in messages)


class EchoModel(GenericFakeChatModel):
    """Echoes the conversation; GenericFakeChatModel streams it word by word."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: Any = None,
        **kw: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(echo_text(messages)))])


class FailingModel(GenericFakeChatModel):
    """Streams ``a b c`` (five tokens with the spaces), then raises."""

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        for token in FAIL_TOKENS:
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))
        raise RuntimeError("the fake model exploded mid-answer")


def _sleep(seconds: float) -> None:
    if os.environ.get("CHATSTREAM_LANGCHAIN_BLOCKING", "false").lower() in (
        "true",
        "1",
    ):
        from gevent import monkey

        monkey.get_original("time", "sleep")(seconds)  # blocks the native thread
    else:
        time.sleep(seconds)  # gevent's, under the gevent worker


class GatedModel(BaseChatModel):
    """Counts the tokens it produces; waits at a gate the test opens."""

    @property
    def _llm_type(self) -> str:
        return "gated-fake"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        raise NotImplementedError("streams only")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: Any = None,
        **kw: Any,
    ) -> Iterator[ChatGenerationChunk]:
        base = Path(os.environ["LC_FAKES_DIR"]) / str(messages[-1].content)
        record = base.with_suffix(".produced")
        produced = 0
        try:
            for i in range(TOTAL):
                if i == GATE_AT:
                    gate = base.with_suffix(".go")
                    deadline = time.monotonic() + 60
                    while not gate.exists() and time.monotonic() < deadline:
                        _sleep(0.01)
                produced += 1
                record.write_text(str(produced))
                yield ChatGenerationChunk(message=AIMessageChunk(content=f"{i} "))
        finally:
            record.write_text(f"{produced} stopped")


def factory(model: str) -> Any:
    """``CHATSTREAM_LANGCHAIN_FACTORY`` target: one runnable per model name."""
    if model == "echo":
        return EchoModel(messages=iter(()))
    if model == "chain":
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), MessagesPlaceholder("messages")]
        )
        return (
            {"messages": RunnablePassthrough()}
            | prompt
            | EchoModel(messages=iter(()))
            | StrOutputParser()
        )
    if model == "fail":
        return FailingModel(messages=iter(()))
    if model == "gated":
        return GatedModel()
    raise ValueError(f"no fake LangChain model named {model!r}")
