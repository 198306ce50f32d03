"""The langchain adapter: LangChain's fake models and real callback machinery.

Generations run through :class:`CallbackBridge` on the threading and the
gevent driver, with cooperative and blocking producers, as the runner does;
``ChatOpenAI`` talks to the local OpenAI-wire server.
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import HumanMessage
from langchain_core.messages import SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda

from chatstream import create_app
from chatstream.adapters import langchain_chat
from chatstream.adapters import langchain_tokens
from chatstream.adapters.base import Finish
from chatstream.adapters.base import GenerationRequest
from chatstream.adapters.bridge import CallbackBridge
from chatstream.adapters.langchain_chat import ChatOpenAIModels
from chatstream.adapters.langchain_chat import LangChainFactory
from chatstream.concurrency import Driver
from chatstream.errors import ConfigError
from chatstream.errors import UpstreamAuthError
from chatstream.errors import UpstreamDropped
from chatstream.errors import UpstreamError
from chatstream.errors import UpstreamUnavailable
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import drop_after
from tests.fakes.openai_server import http_error
from tests.fakes.openai_server import stream_error_after
from tests.fakes.openai_server import tokens
from tests.live.langchain_factories import FAIL_TOKENS
from tests.live.langchain_factories import EchoModel
from tests.live.langchain_factories import FailingModel
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
CASES = [("threading", False), ("threading", True), ("gevent", False), ("gevent", True)]
HI = [{"role": "user", "content": "hi"}]


def generate(runnable, *, driver="threading", blocking=False, messages=HI):
    """One generation, as the runner drives it: every item the adapter yields."""
    adapter = LangChainFactory({"m": runnable}, blocking=blocking)
    bridge = CallbackBridge(adapter.produce, blocking=blocking, driver=Driver(driver))
    return list(bridge.stream(GenerationRequest(messages=messages, model="m")))


def fake(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(text)))


def openai_config(base_url: str) -> dict[str, Any]:
    return {
        "OPENAI_API_KEY": "x",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_TIMEOUT_S": 10.0,
        "OPENAI_MAX_RETRIES": 0,
    }


class UsageModel(BaseChatModel):
    """Streams its words; the last chunk carries usage and a finish reason."""

    text: str = "one two"
    reason: str = "length"

    @property
    def _llm_type(self) -> str:
        return "usage-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kw):
        raise NotImplementedError

    def _stream(self, messages, stop=None, run_manager=None, **kw):
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield ChatGenerationChunk(message=AIMessageChunk(content=(" " if i else "") + word))
        usage = {
            "input_tokens": 3,
            "output_tokens": len(words),
            "total_tokens": 3 + len(words),
        }
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage),
            generation_info={"finish_reason": self.reason},
        )


class WholeAnswerModel(BaseChatModel):
    """No ``_stream``: answers in one piece, with OpenAI-style ``llm_output`` usage."""

    @property
    def _llm_type(self) -> str:
        return "whole-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kw):
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage("all at once"))],
            llm_output={
                "token_usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": 3,
                    "total_tokens": 4,
                }
            },
        )


class CountingModel(BaseChatModel):
    """Streams ``total`` tokens, pausing between them; records what it produced.

    ``state``: ``produced`` and ``attempts`` counts, a ``stopped`` event set when
    its generator is closed, the ``pause`` between tokens, and an optional
    ``gate`` event it waits for before its first token (``started`` is set then).
    """

    state: Any = None
    total: int = 10_000

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kw):
        raise NotImplementedError

    def _stream(self, messages, stop=None, run_manager=None, **kw):
        self.state["attempts"] += 1
        self.state["started"].set()
        if self.state["gate"] is not None:
            self.state["gate"].wait(10)
        try:
            for i in range(self.total):
                self.state["produced"] += 1
                yield ChatGenerationChunk(message=AIMessageChunk(content=f"{i} "))
                self.state["pause"]()
        finally:
            self.state["stopped"].set()


def counting(driver_name: str, blocking: bool, gate: threading.Event | None = None):
    cooperative = driver_name == "gevent" and not blocking
    pause = (lambda: gevent.sleep(0.001)) if cooperative else (lambda: time.sleep(0.001))
    state = {
        "produced": 0,
        "attempts": 0,
        "started": threading.Event(),
        "stopped": threading.Event(),
        "pause": pause,
        "gate": gate,
    }
    return CountingModel(state=state)


def wait_for(event: threading.Event, driver: Driver, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not event.is_set() and time.monotonic() < deadline:
        driver.sleep(0.01)
    return event.is_set()


# -- streaming -----------------------------------------------------------------


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_tokens_arrive_as_langchain_makes_them(driver_name, blocking):
    items = generate(fake("Hello, wörld!\n\nBye 🎉"), driver=driver_name, blocking=blocking)
    assert items == [
        "Hello,",
        " ",
        "wörld!",
        "\n",
        "\n",
        "Bye",
        " ",
        "🎉",
        Finish("stop"),
    ]


def test_messages_reach_the_model_as_langchain_messages():
    conversation = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "again"},
    ]
    seen = []
    chain = RunnableLambda(lambda messages: seen.extend(messages) or messages) | EchoModel(
        messages=iter(())
    )
    items = generate(chain, messages=conversation)
    assert seen == [
        SystemMessage("Be terse."),
        HumanMessage("hi"),
        AIMessage("Hello."),
        HumanMessage("again"),
    ]
    assert "".join(items[:-1]) == ("Echo: system:Be terse. | human:hi | ai:Hello. | human:again")


def test_a_chain_streams_its_models_tokens_not_its_output():
    # The chain's output is upper-cased by a later step; readers get the model's
    # tokens, as the seed's handleLLMNewToken did.
    chain = fake("quiet words") | StrOutputParser() | RunnableLambda(str.upper)
    assert generate(chain) == ["quiet", " ", "words", Finish("stop")]


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_finish_reason_and_usage_come_from_on_llm_end(driver_name, blocking):
    items = generate(UsageModel(), driver=driver_name, blocking=blocking)
    assert items == [
        "one",
        " two",
        Finish("length", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
    ]


def test_usage_is_summed_over_the_models_of_a_chain_and_the_last_reason_wins():
    first = UsageModel(text="draft answer", reason="stop")
    second = UsageModel(text="final", reason="length")
    chain = first | RunnableLambda(lambda m: [HumanMessage(m.content)]) | second
    items = generate(chain)
    assert items[:-1] == ["draft", " answer", "final"]
    assert items[-1] == Finish(
        "length", {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    )


def test_a_model_that_cannot_stream_sends_its_answer_as_one_token():
    items = generate(WholeAnswerModel())
    assert items == [
        "all at once",
        Finish("stop", {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}),
    ]


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_an_error_mid_stream_is_raised_after_its_tokens(driver_name, blocking):
    adapter = LangChainFactory({"m": FailingModel(messages=iter(()))}, blocking=blocking)
    bridge = CallbackBridge(adapter.produce, blocking=blocking, driver=Driver(driver_name))
    got = []
    with pytest.raises(RuntimeError, match="exploded mid-answer"):
        for item in bridge.stream(GenerationRequest(messages=HI, model="m")):
            got.append(item)
    assert got == list(FAIL_TOKENS)


# -- cancellation ----------------------------------------------------------------


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_cancel_stops_the_langchain_run(driver_name, blocking, caplog):
    model = counting(driver_name, blocking)
    driver = Driver(driver_name)
    adapter = LangChainFactory({"m": model}, blocking=blocking)
    bridge = CallbackBridge(adapter.produce, blocking=blocking, maxsize=4, driver=driver)
    items = bridge.stream(GenerationRequest(messages=HI, model="m"))
    assert next(items) == "0 "
    bridge.close()
    with pytest.raises(StopIteration):
        next(items)
    assert wait_for(model.state["stopped"], driver)
    # The buffer holds 4; the run stopped at the next token after the close.
    assert model.state["produced"] < model.total
    # Stopping is not a callback error for LangChain to log.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_cancel_is_not_answered_by_a_fallback():
    gate = threading.Event()
    model = counting("threading", False, gate)
    backup = counting("threading", False)
    runnable = model.with_fallbacks([backup])
    adapter = LangChainFactory({"m": runnable})
    finished = threading.Event()

    def produce(request, callbacks):
        try:
            adapter.produce(request, callbacks)
        finally:
            finished.set()

    driver = Driver("threading")
    bridge = CallbackBridge(produce, driver=driver)
    got: list[Any] = []
    consumer = threading.Thread(
        target=lambda: got.extend(bridge.stream(GenerationRequest(messages=HI, model="m")))
    )
    consumer.start()
    # Cancel while the model waits before its first token: with_fallbacks would
    # start the backup if the stop looked like an ordinary error.
    assert wait_for(model.state["started"], driver)
    bridge.close()
    consumer.join(10)
    gate.set()
    assert wait_for(finished, driver, timeout=30)
    assert got == []
    assert (model.state["attempts"], model.state["produced"]) == (1, 1)
    assert backup.state["attempts"] == 0


# -- ChatOpenAI against the local OpenAI-wire server -------------------------------


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAI() as server:
        yield server


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_chat_openai_streams_exactly(fake_openai, driver_name, blocking):
    sent = ["Hel", "lo", " wörld", "\n\n", "```py\nx = 1\n```", " 🎉"]
    fake_openai.push(tokens(sent, finish_reason="length"))
    model = ChatOpenAIModels(openai_config(fake_openai.base_url))("gpt-test")
    items = generate(model, driver=driver_name, blocking=blocking)
    assert items[:-1] == sent
    assert items[-1] == Finish(
        "length", {"prompt_tokens": 1, "completion_tokens": 6, "total_tokens": 7}
    )
    body = fake_openai.requests[-1].body
    assert body["model"] == "gpt-test" and body["messages"] == HI
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("scenario", "error", "streamed"),
    [
        (http_error(401, "invalid_request_error", "bad key"), UpstreamAuthError, []),
        (
            stream_error_after(2, "overloaded", ["x", "y", "z"]),
            UpstreamError,
            ["x", "y"],
        ),
        (drop_after(2, ["x", "y", "z"]), UpstreamDropped, ["x", "y"]),
    ],
    ids=["401", "error-in-stream", "drop"],
)
def test_chat_openai_errors_become_upstream_errors(fake_openai, scenario, error, streamed):
    fake_openai.push(scenario)
    model = ChatOpenAIModels(openai_config(fake_openai.base_url))("gpt-test")
    adapter = LangChainFactory({"m": model})
    bridge = CallbackBridge(adapter.produce, driver=Driver("threading"))
    got = []
    with pytest.raises(error) as caught:
        for item in bridge.stream(GenerationRequest(messages=HI, model="m")):
            got.append(item)
    assert type(caught.value) is error
    assert got == streamed


def test_chat_openai_unreachable_is_upstream_unavailable():
    model = ChatOpenAIModels(openai_config(f"http://127.0.0.1:{free_port()}/v1"))("gpt-test")
    with pytest.raises(UpstreamUnavailable):
        generate(model)


def test_chat_openai_cancel_closes_the_upstream(fake_openai):
    fake_openai.push(tokens(["t "] * 2000, delay_s=0.01))
    model = ChatOpenAIModels(openai_config(fake_openai.base_url))("gpt-test")
    adapter = LangChainFactory({"m": model})
    bridge = CallbackBridge(adapter.produce, driver=Driver("threading"))
    items = bridge.stream(GenerationRequest(messages=HI, model="m"))
    assert next(items) == "t "
    record = fake_openai.responses[-1]
    bridge.close()
    assert record.client_closed.wait(10)
    assert record.tokens_written < 2000


def test_own_pool_gives_a_fresh_client_and_closes_it(fake_openai):
    fake_openai.push(tokens(["a", "b"]))
    models = ChatOpenAIModels(openai_config(fake_openai.base_url))
    adapter = LangChainFactory({}, blocking=True, per_generation=models.own_pool)
    bridge = CallbackBridge(adapter.produce, blocking=True, driver=Driver("threading"))
    items = list(bridge.stream(GenerationRequest(messages=HI, model="gpt-test")))
    assert items[:2] == ["a", "b"]
    with models.own_pool("gpt-test") as first, models.own_pool("gpt-test") as second:
        assert first.root_client._client is not second.root_client._client
    assert first.root_client._client.is_closed


# -- the factory and config ------------------------------------------------------


def user_factory(model: str):
    return fake(f"I am {model}")


def not_a_runnable(model: str):
    return 42


NOT_CALLABLE = "text"


def langchain_app(monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(f"CHATSTREAM_{name}", value)
    return create_app({"TESTING": True, "SECRET_KEY": "test", "ADAPTER": "langchain"})


def test_user_factory_is_called_once_per_model(monkeypatch):
    app = langchain_app(
        monkeypatch,
        LANGCHAIN_FACTORY="tests.unit.test_langchain_adapter:user_factory",
        MODELS="alpha,beta",
        MODEL="alpha",
    )
    adapter_factory = app.extensions["chatstream"].runner.factory
    assert adapter_factory.name == "langchain"
    assert sorted(adapter_factory.runnables) == ["alpha", "beta"]
    assert adapter_factory.blocking is False  # the default: cooperative
    bridge = adapter_factory()
    items = list(bridge.stream(GenerationRequest(messages=HI, model="beta")))
    assert "".join(items[:-1]) == "I am beta"


@pytest.mark.parametrize(("value", "blocking"), [("true", True), ("1", True), ("false", False)])
def test_langchain_blocking_setting(monkeypatch, value, blocking):
    app = langchain_app(
        monkeypatch,
        LANGCHAIN_FACTORY="tests.unit.test_langchain_adapter:user_factory",
        LANGCHAIN_BLOCKING=value,
    )
    assert app.extensions["chatstream"].runner.factory.blocking is blocking


def test_langchain_blocking_rejects_other_values(monkeypatch):
    with pytest.raises(ConfigError, match="CHATSTREAM_LANGCHAIN_BLOCKING='maybe'"):
        langchain_app(monkeypatch, LANGCHAIN_BLOCKING="maybe")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:factory", "cannot import"),
        ("tests.unit.test_langchain_adapter:missing", "cannot import"),
        ("tests.unit.test_langchain_adapter", "naming a callable"),
        ("tests.unit.test_langchain_adapter:NOT_CALLABLE", "naming a callable"),
        ("tests.unit.test_langchain_adapter:not_a_runnable", "returned int"),
    ],
)
def test_a_bad_factory_stops_start_up_naming_the_setting(monkeypatch, spec, message):
    with pytest.raises(ConfigError, match="CHATSTREAM_LANGCHAIN_FACTORY") as caught:
        langchain_app(monkeypatch, LANGCHAIN_FACTORY=spec)
    assert message in str(caught.value)


def test_default_is_chat_openai_from_the_openai_settings(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    app = langchain_app(monkeypatch, OPENAI_TIMEOUT_S="7", OPENAI_MAX_RETRIES="1")
    adapter_factory = app.extensions["chatstream"].runner.factory
    model = adapter_factory.runnables["gpt-4o-mini"]
    assert type(model).__name__ == "ChatOpenAI"
    assert model.model_name == "gpt-4o-mini"
    assert model.openai_api_key.get_secret_value() == "sk-test"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert (model.request_timeout, model.max_retries) == (7.0, 1)
    assert model.streaming is True and model.stream_usage is True
    # Cooperative: one shared pool. Blocking under gevent: a pool per generation.
    assert adapter_factory.per_generation is None
    monkeypatch.setattr(langchain_chat, "gevent_active", lambda: True)
    settings = app.extensions["chatstream"].settings
    blocking = langchain_chat.factory({**settings, "LANGCHAIN_BLOCKING": True})
    assert blocking.per_generation is not None


@pytest.mark.parametrize(
    ("module", "spec", "package"),
    [
        (
            "langchain_core.callbacks",
            "tests.unit.test_langchain_adapter:user_factory",
            "langchain-core",
        ),
        ("langchain_openai", None, "langchain-openai"),
    ],
)
def test_missing_langchain_says_how_to_install_it(monkeypatch, module, spec, package):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    langchain_tokens.handler_class.cache_clear()
    config = {"MODEL": "m", "LANGCHAIN_FACTORY": spec, **openai_config("http://x/v1")}
    try:
        with pytest.raises(ConfigError) as caught:
            langchain_chat.factory(config)
    finally:
        langchain_tokens.handler_class.cache_clear()
    assert f"needs {package}: pip install 'chatstream[langchain]'" in str(caught.value)


def test_the_base_package_never_imports_langchain():
    code = (
        "import sys, chatstream, chatstream.adapters.langchain_chat\n"
        "from chatstream import create_app\n"
        "create_app({'SECRET_KEY': 'x', 'ADAPTER': 'demo'})\n"
        "print(sorted(m for m in sys.modules if m.startswith('langchain')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


# -- the README example ----------------------------------------------------------


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bring your own LangChain chain", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_works(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    fake_openai.push(tokens(["Arr", ", matey"]))
    items = generate(namespace["chain"]("gpt-4o-mini"))
    assert items[:2] == ["Arr", ", matey"]
    sent = fake_openai.requests[-1].body["messages"]
    assert sent[0]["role"] == "system" and sent[-1] == HI[-1]
