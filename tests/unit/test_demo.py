"""The demo model: exact test tokens, a useful reply, prompt cancel."""

from __future__ import annotations

import pytest

from chatstream.adapters.base import Finish
from chatstream.adapters.base import GenerationRequest
from chatstream.adapters.demo import DemoFactory
from chatstream.adapters.demo import compose_reply
from chatstream.adapters.demo import word_pieces
from chatstream.errors import BadRequest


def request(prompt="hello", **options):
    return GenerationRequest([{"role": "user", "content": prompt}], "demo", options)


def test_exact_tokens_for_tests_and_benchmarks():
    items = list(DemoFactory({"DEMO_DELAY_MS": 0})().stream(request(tokens=5, delay_ms=0)))
    assert items[:-1] == ["0 ", "1 ", "2 ", "3 ", "4 "]
    assert isinstance(items[-1], Finish) and items[-1].usage["completion_tokens"] == 5


def test_reply_is_markdown_quoting_prompt_streamed_in_pieces():
    req = request("line one\n<script>alert(1)</script>")
    reply = compose_reply(req)
    assert "> line one\n> <script>alert(1)</script>" in reply
    assert "```python" in reply and "OPENAI_API_KEY" in reply
    pieces = list(DemoFactory({"DEMO_DELAY_MS": 0})().stream(req))[:-1]
    assert "".join(pieces) == reply and len(pieces) > 50


def test_word_pieces_concatenate_to_the_text():
    text = "  a  long-wordy\tthing\n\n"
    assert "".join(word_pieces(text)) == text


def test_close_interrupts_the_delay():
    adapter = DemoFactory({"DEMO_DELAY_MS": 0})()
    stream = adapter.stream(request(tokens=10, delay_ms=10_000))
    assert next(stream) == "0 "
    adapter.close()
    assert list(stream) == []


@pytest.mark.parametrize(
    "options",
    [
        {"tokens": -1},
        {"tokens": 100_001},
        {"delay_ms": 10_001},
        {"tokens": "5"},
        {"tokens": True},
        {"colour": 1},
    ],
)
def test_options_are_bounded(options):
    with pytest.raises(BadRequest):
        DemoFactory({"DEMO_DELAY_MS": 0}).check_options(options)


def test_large_options_are_accepted():
    assert DemoFactory({"DEMO_DELAY_MS": 0}).check_options(
        {"tokens": 10_000, "delay_ms": 10_000}
    ) == {"tokens": 10_000, "delay_ms": 10_000}
