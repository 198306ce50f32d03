"""Scenario definitions (S1–S5 of issue 5) and the figures computed from a run.

A :class:`Scenario` says what load to apply (kind, chats, tokens, delay) and
which figures to report; :func:`figures` turns the load generator's per-chat
rows into those figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any
from typing import Literal

Kind = Literal["concurrent", "sequential", "idle"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure in the table.

    :param key: name in the measurement dict.
    :param label: row label.
    :param better: ``"low"`` or ``"high"`` — which way is best, for ratios.
    :param fmt: format for one value.
    """

    key: str
    label: str
    better: Literal["low", "high"]
    fmt: str = "{:.1f}"
    ratio: bool = True


COMPLETED = Metric("completed", "completed / failed", "high", "{:.0f}")
TTFT_P50 = Metric("ttft_p50_ms", "TTFT p50 (ms)", "low", "{:.2f}")
TTFT_P99 = Metric("ttft_p99_ms", "TTFT p99 (ms)", "low", "{:.1f}")
LAG_P50 = Metric("lag_p50_ms", "end lag p50 (ms)", "low")
LAG_P99 = Metric("lag_p99_ms", "end lag p99 (ms)", "low")
DELAY_P50 = Metric("delay_p50_ms", "token delay p50 (ms)", "low", "{:.2f}")
DELAY_P99 = Metric("delay_p99_ms", "token delay p99 (ms)", "low", "{:.2f}")
TPS = Metric("tokens_per_s", "tokens/s", "high", "{:,.0f}")
CPU = Metric("cpu_s", "server CPU (s)", "low", "{:.2f}")
RSS = Metric("peak_rss_mb", "server peak RSS (MB)", "low")
GEN_CPU = Metric("loadgen_cpu_s", "load generator CPU (s)", "low", "{:.2f}", False)
OTHER_CPU = Metric("other_cpu_s", "other processes' CPU (s)", "low", "{:.2f}", False)
IDLE = Metric("idle_kb_per_stream", "RSS per idle stream (KB)", "low")
CPU_PER_TOKEN = Metric("cpu_us_per_token", "server CPU per delivered token (µs)", "low")
UPSTREAM_CPU = Metric("upstream_cpu_s", "fake upstream CPU (s)", "low", "{:.2f}", False)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load shape.

    :param name: id shown in the table (``S1-1000``...).
    :param kind: how chats are started (see :mod:`bench.loadgen`).
    :param chats: number of chats (streams for ``idle``).
    :param tokens: tokens per chat.
    :param delay_ms: delay between tokens.
    :param deadline: seconds after which unfinished chats count as failed.
    :param scaleout: run on the S4 set-ups instead of chatstream and the peers.
    :param ramp: ``concurrent`` chats start evenly spread over this many seconds.
    :param upstream: the servers proxy :mod:`bench.fake_upstream` through their
        OpenAI SDK (the ``*-openai`` targets) instead of running a fake model.
    """

    name: str
    title: str
    kind: Kind
    chats: int
    tokens: int
    delay_ms: int
    metrics: tuple[Metric, ...]
    deadline: float = 100.0
    scaleout: bool = False
    ramp: float = 0.0
    upstream: bool = False


_S1 = (
    COMPLETED,
    TTFT_P50,
    TTFT_P99,
    LAG_P50,
    LAG_P99,
    TPS,
    CPU,
    CPU_PER_TOKEN,
    RSS,
    GEN_CPU,
    OTHER_CPU,
)
_S2 = (COMPLETED, TPS, CPU, CPU_PER_TOKEN, RSS, GEN_CPU, OTHER_CPU)
_U1 = (*_S1[:5], DELAY_P50, DELAY_P99, *_S1[5:-2], UPSTREAM_CPU, *_S1[-2:])
_U2 = (*_S2[:-2], UPSTREAM_CPU, *_S2[-2:])
_S3 = (COMPLETED, TTFT_P50, TTFT_P99, CPU, GEN_CPU, OTHER_CPU)
_S5 = (COMPLETED, IDLE, RSS, OTHER_CPU)
#: S5: a silent model: the first token at once, then 10 s of silence (the demo maximum).
IDLE_TOKENS, IDLE_DELAY_MS = 10, 10_000


#: S1 chats start evenly over this many seconds (all N are open together from
#: then until the first ones finish, 2 s after they started).
S1_RAMP = 1.0


def _s1(n: int, name: str = "", scaleout: bool = False) -> Scenario:
    title = f"{'S4 scale-out on ' if scaleout else ''}S1 concurrency, {n:,} chats"
    title += f" x 100 tokens, 20 ms apart, started over {S1_RAMP:.0f} s"
    return Scenario(name or f"S1-{n}", title, "concurrent", n, 100, 20, _S1, 100, scaleout, S1_RAMP)


def _s2(n: int, tokens: int, name: str = "S2", scaleout: bool = False) -> Scenario:
    title = f"{'S4 scale-out on ' if scaleout else ''}S2 throughput, {n} chats"
    title += f" x {tokens:,} tokens, no delay"
    return Scenario(name, title, "concurrent", n, tokens, 0, _S2, 100, scaleout)


def _s3(n: int) -> Scenario:
    title = f"S3 latency, {n} chats one at a time, 10 tokens, no delay"
    return Scenario("S3", title, "sequential", n, 10, 0, _S3, 60)


def _s5(n: int) -> Scenario:
    title = f"S5 memory, {n:,} idle open streams (server RSS growth / streams)"
    return Scenario("S5", title, "idle", n, IDLE_TOKENS, IDLE_DELAY_MS, _S5, 60)


def _u1(n: int) -> Scenario:
    title = f"upstream: {n:,} chats x 100 tokens, 20 ms apart, started over {S1_RAMP:.0f} s,"
    title += " proxied from the fake OpenAI server"
    return Scenario(
        f"U1-{n}", title, "concurrent", n, 100, 20, _U1, 100, ramp=S1_RAMP, upstream=True
    )


def _u2(n: int, tokens: int) -> Scenario:
    title = (
        f"upstream: {n} chats x {tokens:,} tokens, no delay, proxied from the fake OpenAI server"
    )
    return Scenario("U2", title, "concurrent", n, tokens, 0, _U2, 100, upstream=True)


def upstream_scenarios(quick: bool) -> list[Scenario]:
    """The upstream scenarios of issue 11 (``--quick``: U1-100 and a short U2)."""
    if quick:
        return [_u1(100), _u2(20, 200)]
    return [_u1(100), _u1(500), _u1(1000), _u1(3000), _u2(20, 1000)]


def all_scenarios(quick: bool) -> list[Scenario]:
    """Every scenario, in run order; ``quick`` shrinks them for a smoke check."""
    if quick:
        return [
            _s1(100),
            _s2(20, 1000),
            _s3(30),
            _s2(20, 1000, "S4-S2", True),
            _s5(100),
            *upstream_scenarios(True),
        ]
    return [
        _s1(100),
        _s1(1000),
        _s1(3000),
        _s2(50, 2000),
        _s3(200),
        _s1(3000, "S4-S1", True),
        _s2(50, 2000, "S4-S2", True),
        _s5(1000),
        *upstream_scenarios(False),
    ]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0–100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def figures(sc: Scenario, done: dict[str, Any]) -> dict[str, Any]:
    """Compute the scenario's figures from the load generator's final message.

    Rows are ``[ok, ttft_s, last_s, tokens, error, delays_ms]``.  End lag is
    ``last − first − (tokens − 1) × delay``: how late the last token was
    compared with a perfect pacing that started at the first token. Token
    delay (upstream scenarios, whose fake paces on a fixed schedule) is, for
    every token of every completed chat, how much later it came than its
    stream's most punctual token (:meth:`bench.chat.TokenChecker.delays_ms`).
    """
    rows = done["results"]
    ok = [r for r in rows if r[0]]
    out: dict[str, Any] = {
        "completed": len(ok),
        "failed": len(rows) - len(ok),
        "wall_s": done["wall"],
    }
    errors: dict[str, int] = {}
    for r in rows:
        if not r[0]:
            errors[r[4][:80]] = errors.get(r[4][:80], 0) + 1
    out["errors"] = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:3])
    timed = [r for r in ok if r[1] is not None]
    if timed and sc.kind != "idle":
        ttft = [r[1] * 1000 for r in timed]
        lag = [(r[2] - r[1]) * 1000 - (sc.tokens - 1) * sc.delay_ms for r in timed]
        out |= {
            "ttft_p50_ms": percentile(ttft, 50),
            "ttft_p99_ms": percentile(ttft, 99),
            "lag_p50_ms": percentile(lag, 50),
            "lag_p99_ms": percentile(lag, 99),
        }
        delays = [d for r in timed if len(r) > 5 and r[5] for d in r[5]]
        if delays:
            out |= {"delay_p50_ms": percentile(delays, 50), "delay_p99_ms": percentile(delays, 99)}
    if sc.kind != "idle":
        out["tokens"] = sum(r[3] for r in rows)
        out["tokens_per_s"] = out["tokens"] / done["wall"] if done["wall"] else 0.0
    return out


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(statistics.median(values))
