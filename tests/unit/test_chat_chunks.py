"""The bounded chat-completion chunk decoder: exact bytes in, exact tokens out."""

from __future__ import annotations

import json
import random

import pytest

from chatstream.adapters.chat_chunks import ChatChunkDecoder
from chatstream.adapters.upstream_errors import UpstreamInvalidJSON
from chatstream.adapters.upstream_errors import UpstreamProtocolError
from chatstream.errors import UpstreamError

TRICKY = ["Hel", "lo", "\n\n", "  indented", " é", "😀", "\r\n", "\u2028", "data: x", "[DONE]"]


def chunk(delta=None, finish=None, usage=None, choices=True):
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = (
        [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
        if choices
        else []
    )
    body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def body(tokens, newline=b"\n"):
    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": t}) for t in tokens]
    parts.append(chunk({}, "length"))
    usage = {"prompt_tokens": 3, "completion_tokens": len(tokens), "total_tokens": 3 + len(tokens)}
    parts.append(chunk(usage=usage, choices=False))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts).replace(b"\n", newline)


def decode(pieces, **bounds):
    decoder = ChatChunkDecoder(
        max_event_bytes=bounds.pop("max_event_bytes", 1 << 20),
        max_response_bytes=bounds.pop("max_response_bytes", 1 << 30),
        **bounds,
    )
    return list(decoder.tokens(pieces)), decoder


def fragments(data, rng):
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 40)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("seed", range(5))
def test_tokens_are_byte_exact_however_the_body_is_cut(newline, seed):
    data = body(TRICKY, newline)
    tokens, decoder = decode(fragments(data, random.Random(seed)))
    assert tokens == TRICKY
    assert decoder.reason == "length" and decoder.done
    assert decoder.usage == {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}


def test_one_byte_at_a_time():
    data = body(["é😀", "x"], b"\r\n")
    tokens, _ = decode([data[i : i + 1] for i in range(len(data))])
    assert tokens == ["é😀", "x"]


def test_empty_role_only_and_tool_call_deltas_yield_nothing():
    tool = {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]}
    data = (
        chunk({"role": "assistant", "content": None})
        + chunk({})
        + chunk(tool)
        + chunk({"content": ""})
        + chunk({"content": "a"})
        + b"data: [DONE]\n\n"
    )
    tokens, decoder = decode([data])
    assert tokens == ["a"] and decoder.reason == "stop" and decoder.usage is None


def test_done_ends_the_stream_and_later_bytes_are_ignored():
    tokens, decoder = decode([b"data: [DONE]\n\n" + chunk({"content": "late"}) + b"garbage"])
    assert tokens == [] and decoder.done


def test_end_of_body_without_done_still_finishes():
    tokens, decoder = decode([chunk({"content": "a"})])
    assert tokens == ["a"] and not decoder.done


def test_comments_other_fields_and_multiline_data():
    data = (
        b": keep-alive\n"
        b"event: message\nid: 7\nretry: 10\n"
        b'data: {"choices": [{"delta":\n'
        b'data: {"content": "a"}}]}\n\n'
        b"data:" + chunk({"content": "b"})[6:]
    )
    tokens, _ = decode([data])
    assert tokens == ["a", "b"]


def test_error_object_raises_after_the_tokens_before_it():
    data = chunk({"content": "a"}) + b'data: {"error": {"message": "overloaded"}}\n\n'
    got = []
    with pytest.raises(UpstreamError, match="overloaded") as info:
        for token in ChatChunkDecoder(max_event_bytes=1024, max_response_bytes=1 << 20).tokens(
            [data]
        ):
            got.append(token)
    assert got == ["a"] and info.value.code == "upstream_error"


def test_error_without_a_message_uses_the_sdk_wording():
    with pytest.raises(UpstreamError, match="An error occurred during streaming"):
        decode([b'data: {"error": "boom"}\n\n'])


@pytest.mark.parametrize("line", [b"data: {oops\n\n", b'data: {"a": "\\ud800"}\n\n'])
def test_invalid_json_has_its_own_code(line):
    with pytest.raises(UpstreamInvalidJSON) as info:
        decode([chunk({"content": "a"}) + line])
    assert info.value.code == "upstream_invalid_json"


def test_a_json_value_that_is_not_an_object_is_a_protocol_error():
    with pytest.raises(UpstreamProtocolError) as info:
        decode([b"data: [1, 2]\n\n"])
    assert info.value.code == "upstream_protocol_error"


def test_a_line_without_newline_is_cut_at_the_cap():
    read = 0

    def flood():
        nonlocal read
        yield b'data: {"x":"'
        for _ in range(1000):  # bounded: far more than the cap
            read += 4096
            yield b"A" * 4096

    with pytest.raises(UpstreamProtocolError, match="MAX_EVENT_BYTES"):
        decode(flood(), max_event_bytes=64 * 1024)
    assert read <= 64 * 1024 + 4096


def test_a_long_event_of_short_data_lines_is_cut_at_the_cap():
    data = b"data: x\n" * 40_000
    with pytest.raises(UpstreamProtocolError):
        decode([data], max_event_bytes=64 * 1024)


def test_a_token_at_the_cap_passes():
    token = "A" * 1000
    line = chunk({"content": token})
    tokens, _ = decode([line], max_event_bytes=len(line))
    assert tokens == [token]


def test_the_whole_body_is_capped():
    data = chunk({"content": "A" * 900}) * 100
    with pytest.raises(UpstreamProtocolError, match="MAX_RESPONSE_BYTES"):
        decode([data[i : i + 1000] for i in range(0, len(data), 1000)], max_response_bytes=20_000)


def test_pause_is_called_every_pause_every_bytes():
    pauses = []
    data = body(["x" * 100] * 50)
    pieces = [data[i : i + 100] for i in range(0, len(data), 100)]
    tokens, _ = decode(pieces, pause=lambda: pauses.append(1), pause_every=1000)
    assert len(tokens) == 50
    assert len(pauses) == len(data) // 1000


def test_an_event_the_body_ends_in_still_counts():
    # No blank line after the last event (and no [DONE]): the SDK drops it.
    tokens, decoder = decode([chunk({"content": "a"}) + chunk({"content": "b"})[:-2]])
    assert tokens == ["a", "b"] and not decoder.done
    tokens, decoder = decode([chunk({"content": "a"}) + b"data: [DONE]\n"])
    assert tokens == ["a"] and decoder.done


@pytest.mark.parametrize(
    "data", [b"<html><h1>502</h1></html>", b": keep-alive\n\n", b"\x1f\x8b\x08\x00binary", b""]
)
def test_a_body_without_any_data_line_is_a_protocol_error(data):
    with pytest.raises(UpstreamProtocolError, match="without any event-stream data"):
        decode([data])


def body_of(headers, pieces, **bounds):
    decoder = ChatChunkDecoder(
        max_event_bytes=1 << 20, max_response_bytes=bounds.pop("max_response_bytes", 1 << 30)
    )
    return list(decoder.body(headers, pieces)), decoder


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "zstd"])
def test_a_compressed_body_is_refused(encoding):
    with pytest.raises(UpstreamProtocolError, match=f"{encoding}-encoded body"):
        body_of({"content-encoding": encoding}, [b"\x1f\x8b"])
    tokens, _ = body_of({"content-encoding": "identity"}, [chunk({"content": "a"})])
    assert tokens == ["a"]


def test_the_media_type_is_named_when_nothing_was_an_event():
    with pytest.raises(UpstreamProtocolError, match=r"\(text/html\)"):
        body_of({"content-type": "text/html; charset=utf-8"}, [b"<html></html>"])


def completion(**fields):
    message = {"role": "assistant", "content": "Hello"}
    whole = {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
    whole["choices"][0]["finish_reason"] = "length"
    return json.dumps({**whole, **fields}).encode()


def test_a_whole_json_completion_is_read_as_one_token():
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    data = completion(usage=usage)
    tokens, decoder = body_of({"content-type": "application/json"}, [data[:7], data[7:]])
    assert tokens == ["Hello"] and decoder.reason == "length" and decoder.usage == usage
    assert decoder.done


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b'{"error": {"message": "quota"}}', UpstreamError, "quota"),
        (b"{not json", UpstreamInvalidJSON, "not valid JSON"),
        (b"[1, 2]", UpstreamProtocolError, "not a JSON object"),
        (b'{"object": "list"}', UpstreamProtocolError, "no choices"),
    ],
)
def test_a_json_answer_that_is_not_a_completion_is_an_error(data, error, match):
    with pytest.raises(error, match=match):
        body_of({"content-type": "application/json"}, [data])


def test_an_event_stream_labelled_json_is_still_read_as_events():
    data = chunk({"content": "a"}) + chunk({"content": "b"}) + b"data: [DONE]\n\n"
    tokens, decoder = body_of({"content-type": "application/json"}, [b"", data[:3], data[3:]])
    assert tokens == ["a", "b"] and decoder.done
    tokens, decoder = body_of({"content-type": "application/json"}, [b"\n  ", completion()])
    assert tokens == ["Hello"]


def test_a_json_answer_is_capped_too():
    with pytest.raises(UpstreamProtocolError, match="MAX_RESPONSE_BYTES"):
        body_of({"content-type": "application/json"}, [completion()], max_response_bytes=20)
    # It is one event: the event cap applies, while it is read.
    decoder = ChatChunkDecoder(max_event_bytes=64, max_response_bytes=1 << 30)
    pieces = iter([completion()[:40], completion()[40:], b" " * (1 << 20)])
    with pytest.raises(UpstreamProtocolError, match="JSON answer longer than 64 bytes"):
        list(decoder.body({"content-type": "application/json"}, pieces))
    assert next(pieces) == b" " * (1 << 20)  # never read


def test_on_finish_is_called_once_when_the_body_goes_on_after_finish_reason():
    calls = []
    decoder = ChatChunkDecoder(
        max_event_bytes=1 << 20, max_response_bytes=1 << 30, on_finish=lambda: calls.append(1)
    )
    usage = chunk(usage={"total_tokens": 1}, choices=False)
    pieces = [chunk({"content": "a"}), chunk({}, "stop"), usage]
    assert list(decoder.tokens(iter(pieces))) == ["a"]
    assert calls == [1] and decoder.finished and decoder.reason == "stop"
    # finish_reason and [DONE] in one chunk (the common case): never called.
    decoder = ChatChunkDecoder(
        max_event_bytes=1 << 20, max_response_bytes=1 << 30, on_finish=lambda: calls.append(2)
    )
    whole = chunk({"content": "a"}) + chunk({}, "stop") + b"data: [DONE]\n\n"
    assert list(decoder.tokens([whole])) == ["a"]
    assert calls == [1] and decoder.done
