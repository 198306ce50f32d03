"""Upstream peer: FastAPI + ``AsyncOpenAI`` + sse-starlette on uvicorn, one worker.

Run: ``OPENAI_BASE_URL=... uvicorn bench.peers.fastapi_openai:app --workers 1``.

The same HTTP contract as :mod:`bench.peers.fastapi_sse`, but the model is an
OpenAI-compatible upstream read through the official SDK, as its docs show:
``await client.chat.completions.create(stream=True)`` and ``async for chunk``.
One ``AsyncOpenAI`` client (SDK defaults: 1,000 connections, 100 kept alive)
for the process. The ``model`` of the POST is passed through unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi import HTTPException
from fastapi import Request
from fastapi.responses import JSONResponse
from openai import AsyncOpenAI
from sse_starlette.sse import EventSourceResponse

app = FastAPI()
client = AsyncOpenAI()
_pending: dict[str, tuple[str, str]] = {}


async def _events(model: str, prompt: str) -> AsyncIterator[dict[str, Any]]:
    yield {"retry": 3000}
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    i, reason = 0, "stop"
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                yield {
                    "id": str(i),
                    "event": "newToken",
                    "data": json.dumps({"token": choice.delta.content}),
                }
                i += 1
            if choice.finish_reason:
                reason = choice.finish_reason
    yield {"id": str(i), "event": "end", "data": json.dumps({"finish_reason": reason})}


def _stream(model: str, prompt: str) -> EventSourceResponse:
    return EventSourceResponse(_events(model, prompt), ping=15)


@app.post("/api/streaming", response_model=None)
async def create(request: Request) -> JSONResponse | EventSourceResponse:
    """Start a chat: stream now (single request) or hand back a stream URL."""
    body = await request.json()
    model, prompt = str(body.get("model", "t10-d0")), str(body.get("prompt", ""))
    if "text/event-stream" in request.headers.get("accept", ""):
        return _stream(model, prompt)
    sid = uuid.uuid4().hex
    _pending[sid] = (model, prompt)
    return JSONResponse({"id": sid, "stream_url": f"/api/streaming/{sid}"}, status_code=202)


@app.get("/api/streaming/{sid}", response_model=None)
async def events(sid: str) -> EventSourceResponse:
    """Stream a parked chat."""
    parked = _pending.pop(sid, None)
    if parked is None:
        raise HTTPException(404)
    return _stream(*parked)
