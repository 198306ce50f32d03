"""Operations: metrics, request ids, JSON logs."""

from __future__ import annotations

import json
import logging

from chatstream.logs import JsonFormatter


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_streams_tokens_and_reasons(client):
    before = client.get("/metrics").get_data(as_text=True)
    url = client.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 7}}).json[
        "stream_url"
    ]
    client.get(url)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = response.get_data(as_text=True)
    assert (
        sample(after, "chatstream_streams_started_total")
        == sample(before, "chatstream_streams_started_total") + 1
    )
    assert sample(after, "chatstream_tokens_total") - sample(before, "chatstream_tokens_total") == 7
    assert 'chatstream_streams_finished_total{reason="stop"}' in after
    assert "chatstream_time_to_first_token_seconds_bucket" in after
    assert "chatstream_stream_duration_seconds_count" in after


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
