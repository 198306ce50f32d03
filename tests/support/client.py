"""Client-side helpers for live tests: submit prompts, read events with httpx-sse."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
from httpx_sse import connect_sse


@dataclass
class Event:
    id: str
    event: str
    data: dict

    @property
    def token(self) -> str:
        return self.data.get("token", "")


def submit(client: httpx.Client, base: str, **body) -> str:
    """POST a prompt; :returns: the stream URL."""
    response = client.post(base + "/api/streaming", json=body)
    assert response.status_code == 202, response.text
    return base + response.json()["stream_url"]


def read_events(
    client: httpx.Client, url: str, *, last_event_id: str | None = None, limit: int | None = None
) -> list[Event]:
    """Read events until the stream ends (or ``limit`` events), then disconnect."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[Event] = []
    with connect_sse(client, "GET", url, headers=headers) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if not sse.event or not sse.data:
                continue  # nothing but fields without data (no event)
            events.append(Event(sse.id, sse.event, json.loads(sse.data)))
            if sse.event in ("end", "error") or (limit and len(events) >= limit):
                break
    return events


def text_of(events: list[Event]) -> str:
    return "".join(e.token for e in events)


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02, sleep=time.sleep):
    """Poll ``predicate`` until truthy; the timeout is only an upper bound.

    :param sleep: how to wait between polls (a driver's ``sleep`` lets the
        greenlets under test run).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        sleep(interval)
    raise AssertionError("condition not met in time")
