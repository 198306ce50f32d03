"""The fake OpenAI server against raw HTTP and the real ``openai`` SDK.

Waits use generous timeouts only as upper bounds; nothing asserts on speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import drop_after
from tests.fakes.openai_server import http_error
from tests.fakes.openai_server import stall
from tests.fakes.openai_server import stream_error_after
from tests.fakes.openai_server import tokens

ROOT = Path(__file__).resolve().parents[2]
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say hi"}]
FAST_RETRY = {"retry-after-ms": "10"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[OpenAI]:
    with OpenAI(base_url=fake.base_url, api_key="x", max_retries=2) as sdk:
        yield sdk


def create(client: OpenAI, **kwargs):
    return client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **kwargs)


def contents(chunks) -> list[str | None]:
    return [c.choices[0].delta.content for c in chunks if c.choices]


def test_wire_format_is_openai_chunks_byte_for_byte(fake):
    fake.push(tokens(["Hel", "lo"]))
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    url = f"{fake.base_url}/chat/completions"
    with httpx.Client() as http, http.stream("POST", url, json=body) as response:
        raw = response.read()

    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    first = json.loads(raw.split(b"\n\n")[0].removeprefix(b"data: "))
    head = (
        f'{{"id":"{first["id"]}","object":"chat.completion.chunk",'
        f'"created":{first["created"]},"model":"m","system_fingerprint":"fp_fake",'
    )

    def choice(delta: str, finish: str) -> str:
        return (
            f'data: {head}"choices":[{{"index":0,"delta":{delta},'
            f'"logprobs":null,"finish_reason":{finish}}}],"usage":null}}\n\n'
        )

    usage = '"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}'
    assert raw.decode() == (
        choice('{"role":"assistant","content":""}', "null")
        + choice('{"content":"Hel"}', "null")
        + choice('{"content":"lo"}', "null")
        + choice("{}", '"stop"')
        + f'data: {head}"choices":[],{usage}}}\n\n'
        + "data: [DONE]\n\n"
    )
    assert fake.requests[0].body == body
    assert fake.responses[0].tokens_written == 2


def test_sdk_yields_exact_deltas_and_usage(fake, client):
    fake.push(tokens(["Hel", "lo", " there"], finish_reason="length"))
    with create(client, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)

    assert contents(chunks) == ["", "Hel", "lo", " there", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [
        None,
        None,
        None,
        None,
        "length",
    ]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }
    request = fake.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer x"
    assert request.body["model"] == "m"


def test_default_scenario_streams_default_tokens_without_usage(fake, client):
    with create(client) as stream:
        chunks = list(stream)

    assert contents(chunks) == ["", "Hello", ",", " world", "!", None]
    assert all(c.usage is None for c in chunks)


def test_rate_limit_then_success_is_retried(fake, client):
    fake.push(
        http_error(429, "requests", "Slow down", "rate_limit_exceeded", headers=FAST_RETRY),
        tokens(["ok"]),
    )
    with create(client) as stream:
        assert contents(stream) == ["", "ok", None]

    assert [r.status for r in fake.responses] == [429, 200]
    assert fake.requests[1].headers["x-stainless-retry-count"] == "1"


def test_unauthorized_raises_authentication_error_without_retry(fake, client):
    fake.push(http_error(401, "invalid_request_error", "Bad key", code="invalid_api_key"))
    with pytest.raises(openai.AuthenticationError) as info:
        create(client)

    assert type(info.value) is openai.AuthenticationError
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.body == {
        "message": "Bad key",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert len(fake.requests) == 1


def test_server_error_three_times_raises_internal_server_error(fake, client):
    error = http_error(500, "server_error", "Oops", headers=FAST_RETRY)
    fake.push(error, error, error)
    with pytest.raises(openai.InternalServerError) as info:
        create(client)

    assert type(info.value) is openai.InternalServerError
    assert info.value.message == "Error code: 500 - Oops"
    assert len(fake.requests) == 3


def test_non_stream_request_is_bad_request(fake, client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_drop_mid_stream_raises_api_connection_error_after_tokens(fake, client):
    fake.push(drop_after(2, ["a", "b", "c"]))
    received: list[str | None] = []
    with pytest.raises(openai.APIConnectionError) as info:
        with create(client) as stream:
            for chunk in stream:
                received.extend(contents([chunk]))

    assert type(info.value) is openai.APIConnectionError
    assert received == ["", "a", "b"]
    assert fake.wait_for_responses(1)[0].tokens_written == 2


def test_error_in_stream_raises_api_error_after_tokens(fake, client):
    fake.push(stream_error_after(1, "The server had an error", ["a", "b"]))
    received: list[str | None] = []
    with pytest.raises(openai.APIError) as info:
        with create(client) as stream:
            for chunk in stream:
                received.extend(contents([chunk]))

    assert type(info.value) is openai.APIError
    assert info.value.message == "The server had an error"
    assert info.value.body == {
        "message": "The server had an error",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert received == ["", "a"]


def test_close_after_two_tokens_of_slow_stream_is_seen(fake, client):
    fake.push(tokens([f"t{i}" for i in range(20)], delay_s=0.2))
    stream = create(client)
    received = [contents([next(stream)]) for _ in range(3)]
    stream.close()

    assert received == [[""], ["t0"], ["t1"]]
    response = fake.responses[0]
    assert response.client_closed.wait(5)
    assert response.finished.wait(5)
    assert 2 <= response.tokens_written <= 4


def test_stall_is_read_incrementally_then_times_out(fake):
    fake.push(stall(60))
    with OpenAI(base_url=fake.base_url, api_key="x", timeout=0.5) as sdk:
        with pytest.raises(openai.APITimeoutError) as info:
            with create(sdk) as stream:
                # The role chunk arrives while the server is still stalling.
                assert contents([next(stream)]) == [""]
                next(stream)

    assert type(info.value) is openai.APITimeoutError
    assert fake.responses[0].client_closed.wait(5)


def test_stop_ends_a_stalled_stream_promptly():
    fake = FakeOpenAI().start()
    fake.push(stall(60))
    with OpenAI(base_url=fake.base_url, api_key="x") as sdk:
        with pytest.raises(openai.APIConnectionError):
            with create(sdk) as stream:
                next(stream)
                started = time.monotonic()
                fake.stop()
                assert time.monotonic() - started < 10
                next(stream)

    assert fake.responses[0].finished.is_set()
    assert not fake.responses[0].client_closed.is_set()


def test_main_serves_until_sigterm():
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0"]
    command += ["--text", "Hi there"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            with OpenAI(base_url=base_url, api_key="x") as sdk:
                with create(sdk) as stream:
                    assert contents(stream) == ["", "Hi", " there", None]
            proc.terminate()
            assert proc.wait(10) == 0
        finally:
            proc.kill()
