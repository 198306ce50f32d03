"""Parser checks for the load generator: any fragmentation gives the same events.

Run with ``pytest bench/tests`` (not part of the app's suite; no timing involved).
"""

from __future__ import annotations

import random

import pytest

from bench.chat import TokenChecker
from bench.http_response import ResponseParser
from bench.scenarios import figures
from bench.scenarios import upstream_scenarios
from bench.sse_events import SSEDecoder

EVENTS = (
    b"retry: 3000\n\n"
    b": ping\n\n"
    b'id: 0\nevent: newToken\ndata: {"token": "0 "}\n\n'
    b'id: 1\r\nevent: newToken\r\ndata: {"token": "1 "}\r\n\r\n'
    b'id: 2\revent: newToken\rdata: {"token":\rdata: "2 "}\r\r'
    b"\n\n"
    b'event: end\ndata: {"finish_reason": "stop"}\n\n'
)


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = b"", 0
    for n in sizes:
        part = body[i : i + n]
        if not part:
            break
        out += f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n"
        i += n
    if i < len(body):
        out += f"{len(body) - i:x}\r\n".encode() + body[i:] + b"\r\n"
    return out + b"0\r\nX-Trailer: y\r\n\r\n"


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _decode(pieces: list[bytes]) -> list[tuple[bytes, bytes]]:
    got: list[tuple[bytes, bytes]] = []
    dec = SSEDecoder(lambda e, d: got.append((e, d)))
    for p in pieces:
        dec.feed(p)
    return got


def test_sse_reference_events() -> None:
    got = _decode([EVENTS])
    assert got == [
        (b"newToken", b'{"token": "0 "}'),
        (b"newToken", b'{"token": "1 "}'),
        (b"newToken", b'{"token":\n"2 "}'),
        (b"end", b'{"finish_reason": "stop"}'),
    ]


@pytest.mark.parametrize("seed", range(200))
def test_sse_any_fragmentation(seed: int) -> None:
    rng = random.Random(seed)
    assert _decode(_split(b"\xef\xbb\xbf" + EVENTS, rng)) == _decode([EVENTS])


@pytest.mark.parametrize("seed", range(200))
def test_chunked_any_fragmentation(seed: int) -> None:
    rng = random.Random(seed)
    body = _chunked(EVENTS, [rng.randint(1, 30) for _ in range(10)])
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: text/event-stream\r\n\r\n" + body
    )
    out: list[bytes] = []
    parser = ResponseParser(out.append)
    for piece in _split(raw, rng):
        parser.feed(piece)
    assert parser.done and parser.status == 200 and parser.keep_alive
    assert b"".join(out) == EVENTS


def test_content_length_and_close() -> None:
    out: list[bytes] = []
    parser = ResponseParser(out.append)
    parser.feed(b'HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\n{"a"')
    assert parser.done and b"".join(out) == b'{"a"'
    parser.reset()
    out.clear()
    parser.feed(b"HTTP/1.0 200 OK\r\n\r\nabc")
    assert not parser.done and not parser.keep_alive
    parser.eof()
    assert parser.done and out == [b"abc"]


def test_checker_order_and_end() -> None:
    ok = TokenChecker(2, 0.0)
    for e, d in _decode(
        [
            b'event: newToken\ndata: {"token": "0 "}\n\n'
            b'event: newToken\ndata: {"token": "1 "}\n\n'
            b'event: end\ndata: {"finish_reason": "stop"}\n\n'
        ]
    ):
        ok.on_event(e, d)
    assert ok.done and not ok.error
    bad = TokenChecker(2, 0.0)
    bad.on_event(b"newToken", b'{"token": "1 "}')
    assert "token 0" in bad.error
    short = TokenChecker(2, 0.0)
    short.on_event(b"newToken", b'{"token": "0 "}')
    short.on_event(b"end", b'{"finish_reason": "stop"}')
    assert short.error == "end after 1/2 tokens"


def test_token_delays_are_against_the_streams_most_punctual_token() -> None:
    # Paced 20 ms apart; token 1 came 0.5 ms early of the others' path, token 2
    # 3 ms late: delays are per token, against the fastest (token 1).
    arrivals = iter([10.0021, 10.0216, 10.0451])
    checker = TokenChecker(3, 10.0, delay_s=0.020, clock=lambda: next(arrivals))
    for i in range(3):
        checker.on_event(b"newToken", b'{"token": "%d "}' % i)
    assert checker.delays_ms() == [0.5, 0.0, 3.5]
    assert TokenChecker(3, 0.0).delays_ms() is None  # unpaced: no figure


def test_figures_take_token_delays_over_every_token_of_completed_chats() -> None:
    sc = upstream_scenarios(True)[0]
    rows = [
        [True, 0.01, 2.0, 100, "", [0.0] * 96 + [1.0, 2.0, 4.0, 9.0]],
        [True, 0.01, 2.0, 100, "", [0.0] * 100],
        [False, 0.01, 1.0, 50, "timeout", [50.0] * 50],
    ]
    out = figures(sc, {"results": rows, "wall": 3.0})
    assert out["delay_p50_ms"] == 0.0
    assert out["delay_p99_ms"] == 2.0  # nearest rank: the 198th of 200; the failed chat not counted
