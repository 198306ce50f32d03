"""CPU per upstream chunk and per request: the SDK's parsed stream vs the adapter.

``python -m bench.upstream_micro`` starts :mod:`bench.fake_upstream` in a
process of its own and measures, in this process (so the fake's CPU is not
counted), user + system CPU time of:

* ``sdk``: what the openai adapter did before issue 11:
  ``client.chat.completions.create(stream=True)`` and a pydantic
  ``ChatCompletionChunk`` per chunk;
* ``adapter``: :class:`chatstream.adapters.openai_chat.OpenAIChatAdapter`
  (raw body through the SDK, bounded jiter decoding) over its default
  transport, :mod:`chatstream.adapters.upstream_http` (llhttp);
* ``adapter-httpx``: the same over httpx's transport (``OPENAI_HTTP=httpx``).

Per chunk: one stream of ``--tokens`` tokens, ``--streams`` times. Per request:
``--requests`` one-token streams (create, read, close). ``--profile`` prints
the top of a cProfile of the per-request loop. No gevent here: this is the
cost of the parsing itself, as one thread pays it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import openai

from chatstream import config
from chatstream.adapters.base import GenerationRequest
from chatstream.adapters.openai_chat import OpenAIChatFactory

MESSAGES = [{"role": "user", "content": "Hello benchmark"}]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sdk_stream(client: openai.OpenAI, model: str) -> int:
    """The pre-issue-11 adapter loop: parsed chunks; returns the tokens seen."""
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    count = 0
    try:
        for chunk in stream:
            if chunk.usage is not None:
                _ = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    count += 1
    finally:
        stream.close()
    return count


def adapter_stream(factory: OpenAIChatFactory, model: str) -> int:
    """The adapter as chatstream runs it; returns the tokens seen."""
    request = GenerationRequest(MESSAGES, model)  # type: ignore[arg-type]
    return sum(1 for item in factory().stream(request) if isinstance(item, str))


def _measure(fn: Callable[[str], int], model: str, times: int) -> tuple[float, int]:
    fn(model)  # warm: connection, imports, caches
    start = _cpu()
    tokens = sum(fn(model) for _ in range(times))
    return _cpu() - start, tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_upstream"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}/v1"
        values: dict[str, Any] = config.defaults()
        values |= {"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": base, "MODEL": "m"}
        config.validate(values)
        factory = OpenAIChatFactory(values)
        httpx_factory = OpenAIChatFactory(values | {"OPENAI_HTTP": "httpx"})
        client = openai.OpenAI(api_key="bench", base_url=base)
        paths: dict[str, Callable[[str], int]] = {
            "sdk": lambda model: sdk_stream(client, model),
            "adapter": lambda model: adapter_stream(factory, model),
            "adapter-httpx": lambda model: adapter_stream(httpx_factory, model),
        }
        long_model = f"t{args.tokens}-d0"
        print("| path | CPU µs per chunk | CPU µs per request (create + 1 token + close) |")
        print("|---|---:|---:|")
        for name, fn in paths.items():
            cpu, tokens = _measure(fn, long_model, args.streams)
            per_chunk = cpu / tokens * 1e6
            cpu_r, _ = _measure(fn, "t1-d0", args.requests)
            per_request = cpu_r / args.requests * 1e6
            print(f"| {name} | {per_chunk:.1f} | {per_request:.0f} |", flush=True)
        if args.profile:
            for name, fn in paths.items():
                prof = cProfile.Profile()
                prof.runcall(lambda fn=fn: [fn("t1-d0") for _ in range(args.requests)])
                print(f"\n## {name}: per-request profile (cumulative)")
                pstats.Stats(prof).sort_stats("tottime").print_stats(18)
        factory.close()
        httpx_factory.close()
        client.close()
    finally:
        fake.terminate()
        fake.wait(10)
        if fake.stdout is not None:
            fake.stdout.close()


if __name__ == "__main__":
    main()
