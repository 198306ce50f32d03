"""Peer (b): FastAPI + sse-starlette on uvicorn, one worker.

Run: ``uvicorn bench.peers.fastapi_sse:app --workers 1``.

``POST /api/streaming`` parks the options under a new id (or, with
``Accept: text/event-stream``, streams in the reply); ``GET /api/streaming/{id}``
returns an ``EventSourceResponse`` over an async generator that runs the model
(``asyncio.sleep`` between tokens).  sse-starlette adds its ``: ping`` every 15 s.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi import HTTPException
from fastapi import Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

app = FastAPI()
_pending: dict[str, tuple[int, int]] = {}


async def _events(tokens: int, delay_ms: int) -> AsyncIterator[dict[str, Any]]:
    yield {"retry": 3000}
    for i in range(tokens):
        if i and delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        yield {
            "id": str(i),
            "event": "newToken",
            "data": json.dumps({"token": f"{i} "}),
        }
    end = json.dumps({"finish_reason": "stop", "tokens": tokens})
    yield {"id": str(tokens), "event": "end", "data": end}


def _stream(tokens: int, delay_ms: int) -> EventSourceResponse:
    return EventSourceResponse(_events(tokens, delay_ms), ping=15)


@app.post("/api/streaming", response_model=None)
async def create(request: Request) -> JSONResponse | EventSourceResponse:
    """Start a chat: stream now (single request) or hand back a stream URL."""
    body = await request.json()
    opts = body.get("options") or {}
    tokens, delay_ms = int(opts.get("tokens", 10)), int(opts.get("delay_ms", 0))
    if "text/event-stream" in request.headers.get("accept", ""):
        return _stream(tokens, delay_ms)
    sid = uuid.uuid4().hex
    _pending[sid] = (tokens, delay_ms)
    return JSONResponse({"id": sid, "stream_url": f"/api/streaming/{sid}"}, status_code=202)


@app.get("/api/streaming/{sid}", response_model=None)
async def events(sid: str) -> EventSourceResponse:
    """Stream a parked chat."""
    opts = _pending.pop(sid, None)
    if opts is None:
        raise HTTPException(404)
    return _stream(*opts)
