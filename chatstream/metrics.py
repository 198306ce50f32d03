"""Prometheus metrics (``prometheus-client``), multiprocess-safe under gunicorn.

With several gunicorn workers each process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (``gunicorn.conf.py`` sets it up and marks dead
workers); ``/metrics`` then aggregates them with ``MultiProcessCollector``.
Without it (``flask run``, tests) the default in-process registry is used.

Nothing here runs per token: the runner reports once per stream.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess

STREAMS_STARTED = Counter("chatstream_streams_started", "Generations started.")
STREAMS_ACTIVE = Gauge(
    "chatstream_streams_active", "Generations running now.", multiprocess_mode="livesum"
)
STREAMS_FINISHED = Counter(
    "chatstream_streams_finished", "Generations ended, by reason.", ["reason"]
)
STARTS_PACED = Counter(
    "chatstream_starts_paced",
    "Generations that waited to start because the event loop ran late (START_MAX_LAG_MS).",
)
TOKENS = Counter("chatstream_tokens", "Tokens generated and stored for readers.")
UPSTREAM_ERRORS = Counter(
    "chatstream_upstream_errors", "Model/upstream failures, by error code.", ["code"]
)
READERS_ACTIVE = Gauge(
    "chatstream_readers_active", "Open event-stream responses.", multiprocess_mode="livesum"
)
TIME_TO_FIRST_TOKEN = Histogram(
    "chatstream_time_to_first_token_seconds",
    "From generation start to its first token.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STREAM_DURATION = Histogram(
    "chatstream_stream_duration_seconds",
    "From generation start to its terminal event.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


def stream_started() -> None:
    STREAMS_STARTED.inc()
    STREAMS_ACTIVE.inc()


def start_paced() -> None:
    STARTS_PACED.inc()


def stream_finished(
    reason: str, *, tokens: int, ttft_s: float | None, duration_s: float, error_code: str | None
) -> None:
    """Record one generation's outcome.

    :param reason: ``stop``, ``length``, ``cancelled`` or ``error``.
    :param error_code: the error's code when ``reason`` is ``error``.
    """
    STREAMS_ACTIVE.dec()
    STREAMS_FINISHED.labels(reason).inc()
    if tokens:
        TOKENS.inc(tokens)
    if ttft_s is not None:
        TIME_TO_FIRST_TOKEN.observe(ttft_s)
    STREAM_DURATION.observe(duration_s)
    if error_code and error_code.startswith("upstream_"):
        UPSTREAM_ERRORS.labels(error_code).inc()


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
