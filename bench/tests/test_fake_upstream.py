"""The bench's fake OpenAI server speaks the wire format the official SDK parses.

Each chunk is validated strictly against the SDK's ``ChatCompletionChunk``
model (not the lenient ``construct`` the SDK uses when streaming), so a field
of the wrong shape fails here. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from bench.chat import ChatSpec
from bench.targets import ROOT


@pytest.fixture(scope="module")
def base_url():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_upstream"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def raw_events(base_url: str, model: str, usage: bool = True) -> list[str]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    with httpx.Client() as client:
        response = client.post(base_url + "/chat/completions", json=body)
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["transfer-encoding"] == "chunked"
        text = response.text
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text[:-2].split("\n\n")]


def test_every_chunk_validates_and_the_stream_ends_with_done(base_url):
    events = raw_events(base_url, "t3-d0")
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e)) for e in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["0 ", "1 ", "2 "]
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[5].choices == [] and chunks[5].usage is not None
    assert chunks[5].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:5])
    assert len({c.id for c in chunks}) == 1


def test_without_include_usage_there_is_no_usage_chunk(base_url):
    events = raw_events(base_url, "t2-d0", usage=False)
    assert len(events) == 1 + 2 + 1 + 1  # role, tokens, finish, [DONE]


def test_the_official_sdk_streams_it_over_one_keep_alive_connection(base_url):
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
        for _ in range(2):
            stream = client.chat.completions.create(
                model="t4-d1",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            tokens = [c.choices[0].delta.content for c in stream if c.choices]
            assert tokens[1:5] == ["0 ", "1 ", "2 ", "3 "]


def test_upstream_chats_name_their_pacing_in_the_model():
    spec = ChatSpec("127.0.0.1", 1, "postget", 100, 20, upstream=True)
    assert json.loads(spec.post_body()) == {"prompt": "Hello benchmark", "model": "t100-d20"}
