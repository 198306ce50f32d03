"""The langchain adapter in a real ``gunicorn -k gevent`` server, both run modes.

Every test runs twice: LangChain models on native threads
(``CHATSTREAM_LANGCHAIN_BLOCKING=true``) and as greenlets (``false``). The
fake models (``tests/live/langchain_factories.py``) are LangChain's own
``GenericFakeChatModel`` and ``BaseChatModel`` driven by LangChain's real
callback machinery; the ``ChatOpenAI`` tests point ``langchain-openai`` at the
local OpenAI-wire server. Assertions are on events and recorded counts,
never on timing.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import drop_after
from tests.fakes.openai_server import http_error
from tests.fakes.openai_server import stream_error_after
from tests.fakes.openai_server import tokens
from tests.live.conftest import LIVE_ENV
from tests.live.langchain_factories import GATE_AT
from tests.live.langchain_factories import TOTAL
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.client import wait_until
from tests.support.server import GunicornServer

pytestmark = pytest.mark.live

MODES = ["blocking", "cooperative"]
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "héllo wörld"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "again\n🎉"},
]
#: Awkward bytes for SSE and JSON: unicode, newlines, CR, fences, a fake field.
OPENAI_TOKENS = [
    "Hel",
    "lo",
    ", wörld",
    "\n\n",
    "```py\nx = 1\n```",
    " 🎉",
    "data: not an event\r\n",
    "  ",
    '"quoted" \\ back',
]


def _env(mode: str, **extra: str) -> dict[str, str]:
    return {
        **LIVE_ENV,
        "CHATSTREAM_ADAPTER": "langchain",
        "CHATSTREAM_LANGCHAIN_BLOCKING": "true" if mode == "blocking" else "false",
        **extra,
    }


@pytest.fixture(scope="module")
def fakes_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("lc-fakes")


@pytest.fixture(scope="module", params=MODES)
def lc_server(request, tmp_path_factory, fakes_dir):
    """chatstream serving the fake LangChain models of ``langchain_factories``."""
    env = _env(
        request.param,
        CHATSTREAM_LANGCHAIN_FACTORY="tests.live.langchain_factories:factory",
        CHATSTREAM_MODELS="echo,chain,fail,gated",
        CHATSTREAM_MODEL="echo",
        LC_FAKES_DIR=str(fakes_dir),
    )
    log_dir = tmp_path_factory.mktemp(f"gunicorn-lc-{request.param}")
    with GunicornServer(env, log_dir=log_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module", params=MODES)
def openai_server(request, tmp_path_factory, fake_openai):
    """chatstream's default LangChain model, ``ChatOpenAI``, against the fake."""
    env = _env(
        request.param,
        OPENAI_API_KEY="x",
        OPENAI_BASE_URL=fake_openai.base_url,
        CHATSTREAM_MODEL="gpt-test",
        CHATSTREAM_OPENAI_MAX_RETRIES="0",
    )
    log_dir = tmp_path_factory.mktemp(f"gunicorn-lc-openai-{request.param}")
    with GunicornServer(env, log_dir=log_dir) as srv:
        yield srv


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def new_tokens(events):
    return [e.token for e in events if e.event == "newToken"]


# -- LangChain's fake models ----------------------------------------------------


def test_exact_token_sequence(lc_server, client):
    url = submit(client, lc_server.url, messages=CONVERSATION, model="echo")
    events = read_events(client, url)
    # GenericFakeChatModel splits on each whitespace character and keeps it.
    assert new_tokens(events) == [
        "Echo:", " ",
        "system:You", " ", "are", " ", "terse.", " ", "|", " ",
        "human:héllo", " ", "wörld", " ", "|", " ",
        "ai:Hi.", " ", "|", " ",
        "human:again", "\n", "🎉",
    ]  # fmt: skip
    assert [e.id.rsplit(".", 1)[-1] for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert events[-1].event == "end" and events[-1].data == {"finish_reason": "stop"}


def test_a_chain_taking_the_message_list_streams_its_model_tokens(lc_server, client):
    url = submit(client, lc_server.url, prompt="hi there", model="chain")
    events = read_events(client, url)
    assert text_of(events) == "Echo: system:Be brief. | human:hi there"
    assert new_tokens(events)[:3] == ["Echo:", " ", "system:Be"]
    assert events[-1].data == {"finish_reason": "stop"}


def test_an_error_mid_stream_becomes_an_error_event(lc_server, client):
    url = submit(client, lc_server.url, prompt="hi", model="fail")
    events = read_events(client, url)
    assert new_tokens(events) == ["a", " ", "b", " ", "c"]
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "generation_failed"
    assert "Traceback" not in events[-1].data["message"]


def test_cancel_stops_the_langchain_run(lc_server, client, fakes_dir, request):
    tag = f"cancel-{request.node.callspec.id}"
    produced = fakes_dir / f"{tag}.produced"
    url = submit(client, lc_server.url, prompt=tag, model="gated")
    head = read_events(client, url, limit=GATE_AT)
    assert new_tokens(head) == ["0 ", "1 ", "2 "]
    # The model now waits at its gate (in blocking mode, a real blocking sleep
    # on its native thread) and the gevent hub still answers.
    assert client.get(lc_server.url + "/healthz").status_code == 200
    assert client.delete(url).status_code in (200, 202, 204)
    tail = read_events(client, url, last_event_id=head[-1].id)
    assert [e.event for e in tail] == ["end"]
    assert tail[0].data == {"finish_reason": "cancelled", "reason": "client"}
    (fakes_dir / f"{tag}.go").touch()  # let the model try its next token
    # It produced one more token, LangChain handed it to our handler, which
    # stopped the run: the model's generator is closed, far short of TOTAL.
    wait_until(lambda: produced.read_text().endswith("stopped"))
    assert produced.read_text() == f"{GATE_AT + 1} stopped"
    assert GATE_AT + 1 < TOTAL


# -- ChatOpenAI against the local OpenAI-wire server ------------------------------


def test_chat_openai_streams_byte_exact(openai_server, fake_openai, client):
    fake_openai.push(tokens(OPENAI_TOKENS))
    url = submit(client, openai_server.url, messages=CONVERSATION)
    events = read_events(client, url)
    assert new_tokens(events) == OPENAI_TOKENS
    end = events[-1]
    assert end.event == "end" and end.data["finish_reason"] == "stop"
    usage = end.data["usage"]
    assert usage["completion_tokens"] == len(OPENAI_TOKENS)
    assert usage["total_tokens"] == usage["prompt_tokens"] + len(OPENAI_TOKENS)
    sent = fake_openai.requests[-1]
    assert sent.headers["authorization"] == "Bearer x"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == CONVERSATION


def test_chat_openai_finish_reason_length(openai_server, fake_openai, client):
    fake_openai.push(tokens(["cut", " short"], finish_reason="length"))
    events = read_events(client, submit(client, openai_server.url, prompt="hi"))
    assert new_tokens(events) == ["cut", " short"]
    assert events[-1].data["finish_reason"] == "length"


def test_chat_openai_many_requests_in_one_worker(openai_server, fake_openai, client):
    # Pooled connections are reused across generations (and native threads).
    for i in range(6):
        fake_openai.push(tokens([f"answer {i}"]))
        events = read_events(client, submit(client, openai_server.url, prompt=f"q{i}"))
        assert new_tokens(events) == [f"answer {i}"], events


def test_generations_leave_no_threads_or_descriptors_behind(openai_server, fake_openai, client):
    # A native producer thread that touched gevent (sockets, DNS) got a hub,
    # a loop and a resolver pool of its own: all must go with the thread.
    pid = openai_server.worker_pids()[0]

    def held():
        return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))

    def one(i):
        fake_openai.push(tokens([f"answer {i}"]))
        events = read_events(client, submit(client, openai_server.url, prompt=f"q{i}"))
        assert new_tokens(events) == [f"answer {i}"]

    one(0)
    threads, fds = held()
    for i in range(1, 21):
        one(i)
    wait_until(lambda: held()[0] <= threads and held()[1] <= fds + 4)


@pytest.mark.parametrize(
    ("scenario", "code", "streamed"),
    [
        (
            http_error(401, "invalid_request_error", "bad key", "invalid_api_key"),
            "upstream_auth",
            [],
        ),
        (
            stream_error_after(2, "overloaded", ["x", "y", "z"]),
            "upstream_error",
            ["x", "y"],
        ),
        (drop_after(2, ["x", "y", "z"]), "upstream_dropped", ["x", "y"]),
    ],
    ids=["401", "error-in-stream", "drop"],
)
def test_chat_openai_errors_become_error_events(
    openai_server, fake_openai, client, scenario, code, streamed
):
    fake_openai.push(scenario)
    events = read_events(client, submit(client, openai_server.url, prompt="hi"))
    assert new_tokens(events) == streamed, (events, fake_openai.responses[-3:])
    assert events[-1].event == "error"
    assert events[-1].data["code"] == code


def test_chat_openai_cancel_closes_the_upstream(openai_server, fake_openai, client):
    fake_openai.push(tokens(["t "] * 2000, delay_s=0.02))
    url = submit(client, openai_server.url, prompt="long")
    head = read_events(client, url, limit=3)
    assert new_tokens(head) == ["t "] * 3
    assert client.delete(url).status_code in (200, 202, 204)
    record = fake_openai.responses[-1]
    # The next token reaches our handler, the run stops and ChatOpenAI's
    # response is closed: the fake sees the client go away.
    assert record.client_closed.wait(15)
    assert record.tokens_written < 2000
