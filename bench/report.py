"""Render measurements as markdown: one table per scenario.

A cell is the median of the runs followed by each run in parentheses, e.g.
``4.2 (4.1 · 4.3)``.  For ordinary scenarios the last column is chatstream's
median divided by the best peer's median (best = lowest for latencies, CPU and
memory, highest for tokens/s); for S4 it is each set-up divided by the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.scenarios import COMPLETED
from bench.scenarios import Metric
from bench.scenarios import Scenario
from bench.scenarios import median

#: results[scenario name][target name] = one figures dict per run
Results = dict[str, dict[str, list[dict[str, Any]]]]


def _values(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs if key in r and r[key] is not None]


def _cell(runs: list[dict[str, Any]], m: Metric) -> str:
    if not runs:
        return "–"
    if m is COMPLETED:
        cells = [f"{r['completed']}/{r['failed']}" if "completed" in r else "error" for r in runs]
        return " · ".join(cells)
    vals = _values(runs, m.key)
    if not vals:
        return "error" if any("error" in r for r in runs) else "–"
    each = " · ".join(m.fmt.format(v) for v in vals)
    return f"{m.fmt.format(median(vals))} ({each})" if len(vals) > 1 else each


def _ratio(num: list[float], den: list[float]) -> str:
    if not num or not den or median(den) == 0:
        return "–"
    return f"{median(num) / median(den):.2f}×"


def _best_peer(
    results: dict[str, list[dict[str, Any]]], peers: list[str], m: Metric
) -> list[float]:
    medians = [(median(v), v) for p in peers if (v := _values(results.get(p, []), m.key))]
    if not medians:
        return []
    pick = min if m.better == "low" else max
    return pick(medians, key=lambda mv: mv[0])[1]


def scenario_table(sc: Scenario, res: dict[str, list[dict[str, Any]]], peers: list[str]) -> str:
    """Markdown table of one scenario."""
    names = list(res)
    ours = [n for n in names if n.startswith("chatstream")]
    if sc.scaleout:
        ratios = [f"{n} ÷ {names[0]}" for n in names[1:]]
    else:
        ratios = [f"{n} ÷ best peer" for n in ours]
    lines = [
        f"### {sc.name}: {sc.title}",
        "",
        "| figure | " + " | ".join(names + ratios) + " |",
        "|---|" + "---:|" * (len(names) + len(ratios)),
    ]
    for m in sc.metrics:
        row = [m.label] + [_cell(res[n], m) for n in names]
        if m is not COMPLETED and m.ratio:
            if sc.scaleout:
                base = _values(res[names[0]], m.key)
                row += [_ratio(_values(res[n], m.key), base) for n in names[1:]]
            else:
                best = _best_peer(res, peers, m)
                row += [_ratio(_values(res[n], m.key), best) for n in ours]
        else:
            row += [""] * len(ratios)
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    cs, single = res.get("chatstream"), res.get("chatstream-single")
    if sc.name == "S3" and cs and single:
        a, b = _values(cs, "ttft_p50_ms"), _values(single, "ttft_p50_ms")
        if a and b:
            gap = median(a) - median(b)
            notes.append(f"- chatstream TTFT p50, POST-then-GET − single: {gap:+.2f} ms")
    for n in names:
        for i, r in enumerate(res[n], 1):
            if "error" in r:
                notes.append(f"- {n} run {i}: error: {str(r['error']).splitlines()[0][:200]}")
            else:
                if r.get("errors"):
                    notes.append(f"- {n} run {i}: failures: {r['errors']}")
                if r.get("disturbed"):
                    notes.append(
                        f"- {n} run {i}: disturbed: other work used "
                        f"{r['disturbed']} cores in all {r['attempts']} attempts"
                    )
    return "\n".join(lines + ([""] + notes if notes else []))


README_MARK = "<!-- results -->"


def update_readme(path: Path, text: str) -> None:
    """Replace what follows the results marker in ``path`` with ``text``."""
    doc = path.read_text()
    head = doc.split(README_MARK, 1)[0]
    path.write_text(f"{head}{README_MARK}\n\n{text}")


def render(results: Results, scenarios: list[Scenario], peers: list[str], header: str) -> str:
    """The whole report."""
    parts = [header]
    for sc in scenarios:
        if sc.name in results:
            parts.append(scenario_table(sc, results[sc.name], peers))
    return "\n\n".join(parts) + "\n"
