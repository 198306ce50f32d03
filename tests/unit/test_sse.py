"""SSE framing: exact bytes, and a round trip through a spec-following parser."""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import connect_sse
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from chatstream import sse


def parse(chunks: list[bytes]) -> list:
    """Decode a byte stream, delivered in the given fragments, with httpx-sse."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=httpx.ByteStream(b"") if not chunks else _Fragments(chunks),
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        with connect_sse(client, "GET", "http://test/") as source:
            return list(source.iter_sse())


class _Fragments(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self):
        yield from self.chunks


def test_encode_exact_bytes():
    assert sse.encode("hi", event="newToken", id="7") == (b"event: newToken\ndata: hi\nid: 7\n\n")
    assert sse.encode("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse.encode("", retry=3000) == b"retry: 3000\ndata: \n\n"
    assert sse.encode(" lead") == b"data:  lead\n\n"


def test_encode_json_exact_bytes():
    frame = sse.encode_json({"token": "é\n"}, event="newToken", id=3)
    assert frame == 'event: newToken\ndata: {"token":"é\\n"}\nid: 3\n\n'.encode()
    scoped = sse.encode_json({"a": 1}, event="end", id=3, scope="AbCdEf.")
    assert scoped == b'event: end\ndata: {"a":1}\nid: AbCdEf.3\n\n'
    assert sse.encode_json({"a": 1}, event="error") == b'event: error\ndata: {"a":1}\n\n'
    assert sse.encode_token("7 ", 8, "AbCdEf.") == (
        b'event: newToken\ndata: {"token":"7 "}\nid: AbCdEf.8\n\n'
    )


def test_heartbeat_is_one_comment_line_that_makes_no_event_in_httpx_sse():
    assert sse.HEARTBEAT == b": ping\n"
    first = sse.encode("x", event="e", id="1")
    # After an id, httpx-sse reports every blank line as an (empty) event,
    # so a heartbeat must not bring one.
    events = parse([first, sse.HEARTBEAT, sse.HEARTBEAT, sse.encode("y", event="e", id="2")])
    assert [(e.event, e.data, e.id) for e in events] == [("e", "x", "1"), ("e", "y", "2")]
    blank_after_comment = parse([first, b": ping\n\n"])
    assert [(e.event, e.data) for e in blank_after_comment] == [("e", "x"), ("message", "")]


def test_heartbeat_and_retry_are_ignored_by_parsers():
    assert sse.retry_line(1500) == b"retry: 1500\n\n"
    events = parse([sse.retry_line(1500), sse.HEARTBEAT, sse.encode("x", event="e", id="1")])
    # httpx-sse surfaces the retry-only block as an event with empty data;
    # browsers dispatch nothing for it (WHATWG HTML 9.2.6: empty data buffer).
    assert events[0].retry == 1500 and events[0].data == ""
    assert [(e.event, e.data, e.id) for e in events[1:]] == [("e", "x", "1")]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_id_with_line_break_or_nul_is_refused(bad):
    with pytest.raises(ValueError):
        sse.encode("x", id=bad)


def test_event_name_with_line_break_is_refused():
    with pytest.raises(ValueError):
        sse.encode("x", event="a\nb")


TRICKY = st.sampled_from(
    ["", "\n", "\r", "\r\n", " ", "  lead", "\u2028", "\u2029", "é", "😀", "\x00", "data: x", ":"]
)
TEXT = st.lists(st.one_of(TRICKY, st.text()), max_size=6).map("".join)


@settings(max_examples=150, deadline=None)
@given(tokens=st.lists(TEXT, min_size=1, max_size=8), cut=st.integers(1, 7))
def test_json_tokens_round_trip_any_text_in_any_fragments(tokens, cut):
    stream = b"".join(
        sse.encode_json({"token": t}, event="newToken", id=i) for i, t in enumerate(tokens, 1)
    )
    # Fragment at every ``cut`` bytes, splitting UTF-8 characters and lines.
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    events = parse(chunks)
    assert [json.loads(e.data)["token"] for e in events] == tokens
    assert [e.id for e in events] == [str(i) for i in range(1, len(tokens) + 1)]
    assert {e.event for e in events} == {"newToken"}


@settings(max_examples=100, deadline=None)
@given(data=TEXT)
def test_raw_data_round_trips_modulo_line_break_normalisation(data):
    # Raw (non-JSON) data: each CR, LF or CRLF becomes a data line, which the
    # parser joins with LF (WHATWG HTML 9.2.6). U+2028 is not a line break.
    if "\x00" in data:
        data = data.replace("\x00", "")
    events = parse([sse.encode(data, event="m", id="1")])
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert [e.data for e in events] == [expected]


@settings(max_examples=200, deadline=None)
@given(text=TEXT, event_id=st.integers(1, 10**9))
def test_encode_token_is_encode_json_for_any_text(text, event_id):
    assert sse.encode_token(text, event_id) == sse.encode_json(
        {"token": text}, event="newToken", id=event_id
    )
