"""Operations: metrics, request ids, JSON logs."""

from __future__ import annotations

import json
import logging

from chatstream.logs import JsonFormatter
from tests.support.client import wait_until


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_streams_tokens_and_reasons(client):
    """One 7-token stream moves every series by its share, whatever ran before."""
    series = (
        "chatstream_streams_started_total",
        "chatstream_tokens_total",
        'chatstream_streams_finished_total{reason="stop"}',
        "chatstream_time_to_first_token_seconds_count",
        "chatstream_stream_duration_seconds_count",
    )

    def deltas(before: str, after: str) -> list[float]:
        return [sample(after, name) - sample(before, name) for name in series]

    before = client.get("/metrics").get_data(as_text=True)
    url = client.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 7}}).json[
        "stream_url"
    ]
    client.get(url)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    # The runner reports a stream just after writing its last event: poll.
    wait_until(
        lambda: deltas(before, client.get("/metrics").get_data(as_text=True))[2] == 1,
        timeout=10,
    )
    after = client.get("/metrics").get_data(as_text=True)
    assert deltas(before, after) == [1, 7, 1, 1, 1]


def test_request_id_is_echoed_or_generated(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers[
        "X-Request-ID"
    ]
    assert len(generated) == 32 and generated.isalnum()


def test_json_formatter_emits_one_object_with_extras():
    record = logging.LogRecord("chatstream.x", logging.INFO, __file__, 1, "hello %s", ("w",), None)
    record.request_id = "r1"
    record.stream_id = "abcd"
    line = JsonFormatter().format(record)
    payload = json.loads(line)
    assert payload["msg"] == "hello w" and payload["level"] == "INFO"
    assert payload["request_id"] == "r1" and payload["stream_id"] == "abcd"
    assert "\n" not in line
