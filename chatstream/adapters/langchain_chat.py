"""LangChain chat models and runnables, streamed through the callback bridge.

The seed streamed with LangChain's ``handleLLMNewToken`` callback; this is the
same in Python. Each generation runs ``runnable.stream(messages, config=
{"callbacks": [handler]})`` as the producer of a
:class:`~chatstream.adapters.bridge.CallbackBridge`, and the handler's
``on_llm_new_token`` hands every token to the bridge as LangChain makes it.

Which runnable: ``LANGCHAIN_FACTORY=package.module:factory`` names a callable
``factory(model)`` that returns a chat model, or any runnable taking the list
of messages (``SystemMessage``/``HumanMessage``/``AIMessage``); it is called
once per configured model at start-up. Without it, ``ChatOpenAI`` is built from
the openai adapter's settings.

Deliberately odd:

* ``.stream()``, not ``.invoke()``: a chat model only streams under
  ``invoke`` when built with ``streaming=True``, while ``stream`` (and the
  ``transform`` of every LCEL step) always calls the model's ``_stream``, so
  ``on_llm_new_token`` fires per token whatever the model's flags. What the
  runnable yields is ignored: readers get exactly the model's tokens.
* Cancellation raises :class:`_StopRun`, a ``BaseException``, from
  ``on_llm_new_token``. An ``Exception`` would be logged as a callback error
  by LangChain and answered by ``with_fallbacks`` (or any ``except
  Exception`` in a chain); a ``BaseException`` passes through them (as
  ``KeyboardInterrupt`` would), so the run really stops. A model blocked
  waiting for its next token stops when that token arrives (readers already
  got ``end: cancelled``).
* ``on_llm_end`` and ``on_llm_error`` only record: a chain may call several
  models, or fall back to a second one after an error, so the stream ends when
  the whole run returns (``end`` with the last finish reason and the summed
  usage) or raises (an ``error`` event; ``openai`` SDK errors from
  ``ChatOpenAI`` become the same upstream errors as in the openai adapter).
* ``LANGCHAIN_BLOCKING`` picks where the run goes. ``false`` (the default):
  a greenlet, right for models that talk HTTP (``ChatOpenAI`` and most
  others), whose sockets gevent has patched to cooperate. ``true``: a native
  thread, for models that block where gevent cannot see (local inference, C
  extensions), so they never stall the hub. A native thread must not reuse a
  pooled socket opened by another thread (under gevent a socket belongs to
  its thread's hub), so the default ``ChatOpenAI`` then gets a connection pool
  per generation; a chain of your own that talks HTTP should stay cooperative.

LangChain is imported only when this adapter is built, so the base install
stays free of it (``pip install chatstream[langchain]``).

Config keys: ``LANGCHAIN_FACTORY``, ``LANGCHAIN_BLOCKING``, ``MODELS``; for the
default ``ChatOpenAI``: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``OPENAI_TIMEOUT_S``, ``OPENAI_MAX_RETRIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextlib import closing
from contextlib import contextmanager
from contextlib import nullcontext
from typing import Any

import openai

from ..concurrency import gevent_active
from ..errors import ConfigError
from .base import GenerationRequest
from .base import reject_options
from .bridge import CallbackBridge
from .bridge import Callbacks
from .langchain_tokens import StopRun
from .langchain_tokens import handler_class
from .langchain_tokens import require
from .langchain_tokens import to_langchain
from .upstream_errors import is_transport_error
from .upstream_errors import translate


class LangChainFactory:
    """One runnable per model, shared by that model's generations.

    :param runnables: model name -> chat model or runnable.
    :param blocking: run each generation on a native thread.
    :param per_generation: if given, ``per_generation(model)`` is a context
        manager giving a runnable for one generation only (made and closed on
        the producer's own thread), used instead of ``runnables``.
    """

    name = "langchain"

    def __init__(
        self,
        runnables: Mapping[str, Any],
        *,
        blocking: bool = False,
        per_generation: Callable[[str], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.runnables = dict(runnables)
        self.blocking = blocking
        self.per_generation = per_generation

    def __call__(self) -> CallbackBridge:
        return CallbackBridge(self.produce, blocking=self.blocking)

    check_options = staticmethod(reject_options)

    def _runnable(self, model: str) -> AbstractContextManager[Any]:
        if self.per_generation is not None:
            return self.per_generation(model)
        return nullcontext(self.runnables[model])

    def produce(self, request: GenerationRequest, callbacks: Callbacks) -> None:
        """Run the model for ``request``; the bridge's producer.

        :raises UpstreamError: ``ChatOpenAI`` failed (an ``openai`` SDK error).
        """
        handler = handler_class()(callbacks)
        run_config = {
            "callbacks": [handler],
            "run_name": "chatstream",
            "metadata": {"chatstream_model": request.model},
        }
        messages = to_langchain(request.messages)
        try:
            with (
                self._runnable(request.model) as runnable,
                closing(runnable.stream(messages, config=run_config)) as run,
            ):
                for _ in run:
                    if callbacks.cancelled:  # a runnable that streams without a model
                        return
        except StopRun:
            return
        except Exception as exc:
            if isinstance(exc, openai.APIError) or is_transport_error(exc):
                raise translate(exc, streaming=handler.tokens > 0) from exc
            raise
        callbacks.on_end(handler.reason, handler.usage)


class ChatOpenAIModels:
    """The default runnables: ``ChatOpenAI`` from the openai adapter's settings."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._chat_model = require("langchain_openai", "langchain-openai").ChatOpenAI
        self._config = config

    def __call__(self, model: str, http_client: Any = None) -> Any:
        return self._chat_model(
            model=model,
            streaming=True,
            stream_usage=True,
            api_key=self._config.get("OPENAI_API_KEY") or "unset",
            base_url=self._config.get("OPENAI_BASE_URL") or None,
            timeout=self._config["OPENAI_TIMEOUT_S"],
            max_retries=self._config["OPENAI_MAX_RETRIES"],
            http_client=http_client,
        )

    @contextmanager
    def own_pool(self, model: str) -> Iterator[Any]:
        """A ``ChatOpenAI`` with a connection pool of its own, for one generation.

        Under gevent a socket belongs to the hub of the thread that opened it;
        reused from another native thread it fails ("cannot switch to a
        different thread"), so native producer threads share no pool.
        """
        http_client = openai.DefaultHttpxClient()
        try:
            yield self(model, http_client)
        finally:
            http_client.close()


def _user_factory(spec: str) -> Callable[[str], Any]:
    module_name, _, attr = spec.partition(":")
    try:
        make = getattr(importlib.import_module(module_name), attr) if attr else None
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"CHATSTREAM_LANGCHAIN_FACTORY={spec!r}: cannot import: {exc}") from exc
    if not callable(make):
        raise ConfigError(
            f"CHATSTREAM_LANGCHAIN_FACTORY={spec!r} is invalid: expected "
            "'package.module:factory' naming a callable"
        )
    return make  # type: ignore[no-any-return]


def factory(config: Mapping[str, Any]) -> LangChainFactory:
    """Build the LangChain adapter factory from config.

    :raises ConfigError: LangChain is not installed, the factory cannot be
        imported, or it returns something that cannot ``stream``.
    """
    handler_class()  # fail at start-up, with the install hint, if LangChain is missing
    spec = config.get("LANGCHAIN_FACTORY")
    blocking = bool(config.get("LANGCHAIN_BLOCKING"))
    per_generation = None
    if spec:
        make = _user_factory(spec)
    else:
        make = chat_openai = ChatOpenAIModels(config)
        if blocking and gevent_active():
            per_generation = chat_openai.own_pool
    models = config.get("MODELS") or [config["MODEL"]]
    runnables = {model: make(model) for model in models}
    for model, runnable in runnables.items():
        if not callable(getattr(runnable, "stream", None)):
            raise ConfigError(
                f"CHATSTREAM_LANGCHAIN_FACTORY={spec!r} is invalid: for {model!r} "
                f"it returned {type(runnable).__name__}, not a LangChain runnable"
            )
    return LangChainFactory(runnables, blocking=blocking, per_generation=per_generation)
