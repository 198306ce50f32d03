"""npm clients under Node 20: `eventsource` (its own reconnect), `eventsource-parser` over fetch."""

from __future__ import annotations

import json
import re
import subprocess

import httpx

from tests.clients.conftest import CUT_AFTER
from tests.clients.conftest import HERE
from tests.clients.conftest import OPTIONS
from tests.clients.conftest import expected


def run_node(node: str, script: str, *args: str) -> dict:
    result = subprocess.run(
        [node, str(HERE / "node" / script), *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def streams_started(base: str) -> float:
    metrics = httpx.get(base + "/metrics", timeout=30).text
    match = re.search(r"^chatstream_streams_started_total ([0-9.e+]+)$", metrics, flags=re.M)
    assert match, metrics
    return float(match.group(1))


def test_npm_eventsource_resumes_by_itself(proxy, node, node_modules):
    response = httpx.post(
        proxy.url + "/api/streaming", json={"prompt": "x", "options": OPTIONS}, timeout=30
    )
    proxy.arm(CUT_AFTER)
    result = run_node(node, "eventsource_stream.mjs", proxy.url + response.json()["stream_url"])
    assert result["tokens"] == expected()
    assert result["finish"]["finish_reason"] == "stop"
    assert proxy.cuts == 1
    first, resumed = result["lastEventIds"]  # it reconnected once, by itself, with its id
    assert first == "" and re.fullmatch(r"[A-Za-z0-9_-]{6}\.[0-9]+", resumed)


def test_eventsource_parser_post_form_resumes_by_its_stream_url(proxy, node, node_modules):
    before = streams_started(proxy.url)
    proxy.arm(CUT_AFTER, methods=("POST",))
    result = run_node(node, "parser_fetch.mjs", proxy.url, json.dumps(OPTIONS))
    assert result["tokens"] == expected()
    assert result["finish"]["finish_reason"] == "stop"
    assert proxy.cuts == 1 and result["connections"] == 2
    assert len(set(result["streamIds"])) == 1  # the resume named the same stream
    assert streams_started(proxy.url) - before == 1  # one generation, not two
