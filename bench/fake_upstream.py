"""A fast fake OpenAI chat-completions server for the upstream scenarios.

``python -m bench.fake_upstream --port P`` serves ``POST /v1/chat/completions``
(``stream: true``) with OpenAI's exact streaming wire format: HTTP/1.1
keep-alive, chunked transfer encoding, one ``data: {chunk}\\n\\n`` event per
write: a role chunk, one chunk per token (``"0 "``, ``"1 "``... as the demo
model and the load generator's checker expect), a ``finish_reason`` chunk, the
usage chunk (``choices: []``, when ``stream_options.include_usage``; every
other chunk then carries ``"usage": null``) and ``data: [DONE]``.

Pacing comes from the model name, so every server under test passes it through
unchanged: ``t<T>-d<D>`` streams T tokens, the first at once, then D ms apart.

Cheap on purpose, so that thousands of streams cost it little (its CPU is
reported beside the server's): an asyncio ``Protocol`` on uvloop, no
per-request JSON encoding of chunks (each event is a prebuilt prefix, the
stream's id and a prebuilt suffix, framed as one HTTP chunk), one loop timer
per token. Written by hand because no library serves this wire format;
``tests/fakes/openai_server.py`` is the scriptable, thread-per-connection fake
for the tests, too slow for load.

It prints ``ready <port>`` on stdout when listening, and its own CPU time
(``cpu <seconds>``) on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import sys
import time
from typing import Any

_MODEL = re.compile(r"t(\d+)-d(\d+)")
_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\n"
    b"x-request-id: req_bench\r\n"
    b"openai-processing-ms: 1\r\n"
    b"\r\n"
)


def _frame(event: bytes) -> bytes:
    """One HTTP/1.1 chunk holding one SSE event (RFC 9112, 7.1)."""
    return b"%x\r\n%s\r\n" % (len(event), event)


class Stream:
    """The prebuilt events of one model name (shared by every stream of it)."""

    def __init__(self, model: str, tokens: int, delay_ms: int) -> None:
        self.tokens = tokens
        self.delay_s = delay_ms / 1000
        created = int(time.time())
        # Everything before and after the per-stream id, with usage: null.
        head = b'data: {"id":"'
        rest = (
            f'","object":"chat.completion.chunk","created":{created},"model":"{model}",'
            '"service_tier":"default","system_fingerprint":"fp_bench","choices":['
        ).encode()

        def choice(delta: dict[str, Any], finish: str | None) -> bytes:
            body = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return json.dumps(body, separators=(",", ":")).encode()

        def tail(choices: bytes, usage: bytes = b"null") -> bytes:
            return rest + choices + b'],"usage":' + usage + b"}\n\n"

        self.head = head
        self.role = tail(choice({"role": "assistant", "content": "", "refusal": None}, None))
        self.token = [tail(choice({"content": f"{i} "}, None)) for i in range(tokens)]
        self.finish = tail(choice({}, "stop"))
        usage = {
            "prompt_tokens": 9,
            "completion_tokens": tokens,
            "total_tokens": 9 + tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        self.usage = tail(b"", json.dumps(usage, separators=(",", ":")).encode())
        self.done = _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    def event(self, sid: bytes, suffix: bytes) -> bytes:
        return _frame(self.head + sid + suffix)


_streams: dict[str, Stream] = {}


def _stream_for(model: str) -> Stream:
    stream = _streams.get(model)
    if stream is None:
        match = _MODEL.fullmatch(model)
        tokens, delay = (int(match[1]), int(match[2])) if match else (10, 0)
        stream = _streams[model] = Stream(model, tokens, delay)
    return stream


class Connection(asyncio.Protocol):
    """One keep-alive connection; requests are answered one at a time."""

    counter = 0

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4 : end + 4 + length]
        self.buf = self.buf[end + 4 + length :]
        if not head.startswith("POST ") or "/chat/completions" not in head.split(" ", 2)[1]:
            self._reply(404, b'{"error":{"message":"Unknown URL","type":"invalid_request_error"}}')
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._reply(400, b'{"error":{"message":"bad JSON","type":"invalid_request_error"}}')
            return
        self._start(request)

    def _reply(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )
        self._next_request()

    def _start(self, request: dict[str, Any]) -> None:
        assert self.transport is not None
        self.busy = True
        Connection.counter += 1
        stream = _stream_for(str(request.get("model", "")))
        sid = b"chatcmpl-%024x" % Connection.counter
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.transport.write(_HEAD + stream.event(sid, stream.role))
        if stream.delay_s == 0:
            # No pacing: every event in one write.
            parts = [stream.event(sid, t) for t in stream.token]
            self._finish(stream, sid, usage, parts)
            return
        self._tick(stream, sid, usage, 0, self.loop.time())

    def _tick(self, stream: Stream, sid: bytes, usage: bool, i: int, t0: float) -> None:
        self.timer = None
        if self.transport is None:
            return
        if i >= stream.tokens:
            self._finish(stream, sid, usage, [])
            return
        self.transport.write(stream.event(sid, stream.token[i]))
        # Due times from the start, so pacing does not drift with timer lateness.
        due = t0 + (i + 1) * stream.delay_s
        self.timer = self.loop.call_at(due, self._tick, stream, sid, usage, i + 1, t0)

    def _finish(self, stream: Stream, sid: bytes, usage: bool, parts: list[bytes]) -> None:
        assert self.transport is not None
        parts.append(stream.event(sid, stream.finish))
        if usage:
            parts.append(stream.event(sid, stream.usage))
        parts.append(stream.done)
        self.transport.write(b"".join(parts))
        self.busy = False
        self._next_request()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(loop), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    await stop.wait()
    server.close()
    print(f"cpu {cpu_seconds():.3f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # the bench requirements have it; plain asyncio works too
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve(args.host, args.port))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
