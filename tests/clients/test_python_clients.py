"""Python SSE clients: httpx-sse (the README example), requests-sse, sseclient-py."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import requests
import sseclient
from httpx_sse import connect_sse
from requests_sse import EventSource

from tests.clients.conftest import CUT_AFTER
from tests.clients.conftest import OPTIONS
from tests.clients.conftest import expected
from tests.clients.conftest import readme_example


def stream_url(base: str, **body) -> str:
    response = httpx.post(base + "/api/streaming", json={"prompt": "x", **body}, timeout=30)
    assert response.status_code == 202, response.text
    return base + response.json()["stream_url"]


def test_httpx_sse_readme_example_resumes_across_a_cut(proxy):
    namespace: dict = {}
    exec(readme_example("httpx-sse"), namespace)
    proxy.arm(CUT_AFTER)
    tokens = list(namespace["stream_answer"](proxy.url, "x", OPTIONS))
    assert tokens == expected()
    assert proxy.cuts == 1


def test_requests_sse_resumes_by_itself(proxy):
    url = stream_url(proxy.url, options=OPTIONS)
    proxy.arm(CUT_AFTER)
    tokens, drops = [], []
    with EventSource(
        url,
        timeout=30,
        max_connect_retry=3,
        reconnection_time=timedelta(milliseconds=100),
        on_error=lambda: drops.append(1),
    ) as source:
        for event in source:  # bounded: the stream ends with ``end``
            if event.type == "newToken":
                tokens.append(json.loads(event.data)["token"])
            elif event.type == "end":
                break
    assert tokens == expected()
    assert proxy.cuts == 1 and drops  # it did reconnect by itself


def read_with_sseclient(url: str, attempts: int = 5) -> list[str]:
    """sseclient-py has no reconnect: this loop resumes with Last-Event-ID."""
    tokens: list[str] = []
    last_id = ""
    for _ in range(attempts):
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with requests.get(url, stream=True, headers=headers, timeout=30) as response:
                if response.status_code == 204:
                    return tokens
                for event in sseclient.SSEClient(response).events():
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        break  # sseclient-py hands out the cut, incomplete event
                    last_id = event.id or last_id
                    if event.event == "newToken":
                        tokens.append(data["token"])
                    elif event.event == "end":
                        return tokens
        except requests.RequestException:
            pass  # dropped: resume after the last complete event
    raise AssertionError(f"gave up; got {tokens}")


def test_sseclient_py_resumes_across_a_cut(proxy):
    url = stream_url(proxy.url, options=OPTIONS)
    proxy.arm(CUT_AFTER)
    assert read_with_sseclient(url) == expected()
    assert proxy.cuts == 1


def test_requests_reads_utf8_text_as_utf8(clients_server):
    """Issue 10.2: without a charset, requests decodes text/* as ISO-8859-1."""
    prompt = "héllo — ünïcode ✓ 😀 …"  # "…" is U+2026: its UTF-8 holds a 0x85 byte
    url = stream_url(clients_server.url, prompt=prompt)
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.encoding == "utf-8"
        lines = list(response.iter_lines(decode_unicode=True))
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert prompt in "".join(d.get("token", "") for d in data)


def test_httpx_sse_sees_only_real_events(clients_server):
    """Issue 10.5: a ``retry:``-only block became an empty message in httpx-sse.

    Heartbeats (comments) may come while the model is silent; httpx-sse drops
    them, and ``retry:`` rides on the first event.
    """
    url = stream_url(clients_server.url, options={"tokens": 3, "delay_ms": 1500})
    with httpx.Client(timeout=30) as client, connect_sse(client, "GET", url) as source:
        events = [(sse.event, sse.data, sse.retry) for sse in source.iter_sse()]
    assert [event for event, _, _ in events] == ["newToken"] * 3 + ["end"]
    assert all(json.loads(data) for _, data, _ in events)
    assert events[0][2] == 200  # the server's retry, on the first event
