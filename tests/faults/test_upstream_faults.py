"""Issue 9, item 2: one misbehaving upstream must not kill the worker or its other streams.

A real ``gunicorn -k gevent`` chatstream (openai adapter, one worker, a 5 s
worker heartbeat so a starved hub gets the worker killed quickly) in front of
the fake OpenAI server in hostile modes (``tests/fakes/openai_server.py``,
every mode bounded in bytes and time). Each test starts a well-behaved
stream first, then the hostile one, and checks:

* the hostile stream ends with its specific ``error`` code;
* what the upstream managed to write is bounded (the adapter hung up early);
* ``/healthz`` answers and the worker has the same PID (it survived);
* the well-behaved stream on the same worker got every token and ``end``;
* the worker's RSS grew by less than ``RSS_BUDGET_MB``.

Figures each test measures: the error code, the upstream's bytes written,
the worker's RSS growth (printed with ``-s``).
"""

from __future__ import annotations

import httpx
import pytest

from chatstream.adapters.upstream_http import MAX_HEAD_BYTES
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import hostile
from tests.fakes.openai_server import stall
from tests.fakes.openai_server import tokens
from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.client import wait_until
from tests.support.server import GunicornServer

MAX_EVENT_BYTES = 1 << 20  # the default: one line, event or token
MAX_RESPONSE_BYTES = 8 << 20
RSS_BUDGET_MB = 64
NEIGHBOUR = [f"n{i} " for i in range(20)]


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def server(fake, tmp_path_factory):
    env = {
        "CHATSTREAM_ADAPTER": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "CHATSTREAM_MODEL": "gpt-test",
        "CHATSTREAM_OPENAI_MAX_RETRIES": "0",
        "CHATSTREAM_OPENAI_TIMEOUT_S": "2",
        "CHATSTREAM_OPENAI_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES),
        "CHATSTREAM_OPENAI_MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
        # The worker heartbeat: a hub starved this long gets the worker killed.
        "GUNICORN_CMD_ARGS": "--timeout 5",
    }
    with GunicornServer(env, log_dir=tmp_path_factory.mktemp("gunicorn")) as srv:
        yield srv


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def start(fake, client, server, scenario) -> str:
    """Queue ``scenario`` and POST; return once the upstream got the request."""
    before = len(fake.requests)
    fake.push(scenario)
    url = submit(client, server.url, prompt="hi")
    wait_until(lambda: len(fake.requests) > before, timeout=10)
    return url


def run_hostile(fake, server, client, scenario):
    """A neighbour stream, then the hostile one; the hostile events, bytes, RSS growth."""
    (pid,) = server.worker_pids()
    rss_before = rss_mb(pid)
    neighbour = start(fake, client, server, tokens(NEIGHBOUR, delay_s=0.05))
    url = start(fake, client, server, scenario)
    events = read_events(client, url)
    record = fake.responses[-1]
    # The worker is alive, the same process, and its hub answers.
    assert client.get(server.url + "/healthz", timeout=5).status_code == 200
    assert server.worker_pids() == [pid]
    growth = rss_mb(pid) - rss_before
    rest = read_events(client, neighbour)
    assert text_of(rest) == "".join(NEIGHBOUR), "the neighbour stream lost tokens"
    assert rest[-1].event == "end" and rest[-1].data["finish_reason"] == "stop"
    name = getattr(scenario, "mode", "stall")
    print(f"{name}: {record.bytes_written} bytes written, RSS +{growth:.1f} MB")
    assert growth < RSS_BUDGET_MB
    return events, record


def test_no_newline_flood_is_cut_at_the_line_cap(fake, server, client):
    events, record = run_hostile(fake, server, client, hostile("flood"))
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "upstream_protocol_error"
    assert "CHATSTREAM_OPENAI_MAX_EVENT_BYTES" in events[-1].data["message"]
    assert record.bytes_written < 16 * MAX_EVENT_BYTES


def test_one_100mb_chunk_is_never_one_token(fake, server, client):
    events, record = run_hostile(fake, server, client, hostile("huge_chunk", max_bytes=100 << 20))
    assert [e.event for e in events] == ["error"]
    assert events[-1].data["code"] == "upstream_protocol_error"
    assert record.bytes_written < 16 * MAX_EVENT_BYTES


def test_bytes_per_generation_are_capped(fake, server, client):
    # Each token is under the line cap; together they pass the response cap.
    events, record = run_hostile(fake, server, client, hostile("big_tokens", piece=512 << 10))
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "upstream_protocol_error"
    assert "CHATSTREAM_OPENAI_MAX_RESPONSE_BYTES" in events[-1].data["message"]
    delivered = sum(len(e.token) for e in events)
    assert delivered <= MAX_RESPONSE_BYTES
    # What the upstream wrote is the cap plus what the kernel's socket buffers took.
    assert record.bytes_written < MAX_RESPONSE_BYTES + (16 << 20)


def test_invalid_json_is_a_specific_error_without_a_traceback(fake, server, client):
    logged = len(server.log())
    events, _ = run_hostile(fake, server, client, hostile("invalid_json"))
    assert text_of(events) == "ok"
    assert events[-1].event == "error" and events[-1].data["code"] == "upstream_invalid_json"
    log = server.log()[logged:]
    assert "Traceback" not in log and "generation failed" not in log
    assert "upstream_invalid_json" in log  # one line says what happened


def test_hang_ends_with_a_timeout(fake, server, client):
    # A guard, not a fix: the SDK's read timeout already ended it before issue 9.
    events, _ = run_hostile(fake, server, client, stall(30))
    assert events[-1].event == "error" and events[-1].data["code"] == "upstream_timeout"


def test_a_slow_answer_longer_than_the_read_timeout_completes(fake, server, client):
    # The read timeout (2 s here) bounds each wait for the upstream, not the
    # answer: 30 tokens 0.1 s apart take 3 s and all arrive. Under gevent the
    # waits once added up against one timer (libev keeps what is left of a
    # stopped timer), and such an answer ended as upstream_timeout.
    slow = [f"s{i} " for i in range(30)]
    events = read_events(client, start(fake, client, server, tokens(slow, delay_s=0.1)))
    assert text_of(events) == "".join(slow)
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"


def test_done_at_once_is_an_empty_answer(fake, server, client):
    # A guard: [DONE] before any chunk was an empty ``end: stop`` before too.
    events, _ = run_hostile(fake, server, client, hostile("done_at_once"))
    assert [e.event for e in events] == ["end"]
    assert events[-1].data["finish_reason"] == "stop"


def test_close_mid_chunk_is_a_drop(fake, server, client):
    # A guard: a FIN inside an HTTP chunk was ``upstream_dropped`` before too.
    events, _ = run_hostile(fake, server, client, hostile("close_mid_chunk"))
    assert text_of(events) == "a"
    assert events[-1].event == "error" and events[-1].data["code"] == "upstream_dropped"


@pytest.mark.parametrize(
    ("mode", "what"), [("gzip_body", "gzip-encoded"), ("html_page", "text/html")]
)
def test_a_body_that_is_no_event_stream_is_an_error_not_an_empty_answer(
    fake, server, client, mode, what
):
    # Read raw, both ended as an empty ``end: stop`` before: the answer was
    # lost without a word (the gzip body held two tokens).
    events, _ = run_hostile(fake, server, client, hostile(mode))
    assert [e.event for e in events] == ["error"]
    assert events[-1].data["code"] == "upstream_protocol_error"
    assert what in events[-1].data["message"]


@pytest.mark.parametrize("mode", ["finish_then_hang", "finish_then_drop"])
def test_an_upstream_that_stops_after_finish_reason_still_ends(fake, server, client, mode):
    # Before: a complete answer, then upstream_timeout after the read timeout
    # (hang) or upstream_dropped (drop). Now it ends as finished, without usage.
    events, record = run_hostile(fake, server, client, hostile(mode))
    assert text_of(events) == "ab"
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
    if mode == "finish_then_hang":
        assert record.client_closed.wait(10)  # we hung up, after FINISH_GRACE_S


def test_a_server_that_ignores_stream_still_answers(fake, server, client):
    events, _ = run_hostile(fake, server, client, hostile("json_completion"))
    assert text_of(events) == "Hello there"
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
    assert events[-1].data["usage"]["total_tokens"] == 4


def test_a_reply_that_is_not_http_is_unavailable(fake, server, client):
    # The transport (llhttp) refuses it before any token: as a server that
    # cannot be reached, never a token made of its bytes.
    events, record = run_hostile(fake, server, client, hostile("not_http"))
    assert [e.event for e in events] == ["error"]
    assert events[-1].data["code"] == "upstream_unavailable"


def test_endless_headers_are_cut_at_the_transport_bound(fake, server, client):
    events, record = run_hostile(fake, server, client, hostile("endless_headers"))
    assert [e.event for e in events] == ["error"]
    assert events[-1].data["code"] == "upstream_unavailable"
    print(f"endless headers: upstream wrote {record.bytes_written} bytes before the hang-up")
    # The hang-up came from our side, not from the fake's own bounds (200 MB, 30 s).
    assert record.client_closed.wait(5)
    # The transport read up to its bound (64 KiB); the rest was in flight in the
    # kernel's socket buffers, which loopback autotuning grows to a few MB (CI
    # saw 2.4 MB), the same allowance as the response-cap test above.
    assert record.bytes_written < MAX_HEAD_BYTES + (16 << 20)
