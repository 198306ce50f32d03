"""``python -m bench``: run the scenarios against chatstream and the peers.

Examples::

    python -m bench                      # everything, two runs each (~20 min)
    python -m bench --quick              # smoke check, one run, small N (~1-2 min)
    python -m bench -s S1-1000 S3 -t node fastapi --runs 2
    python -m bench --upstream           # U1-100 ... U1-3000, U2: the openai adapter vs SDK peers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.loadgen import raise_nofile_limit
from bench.report import Results
from bench.report import render
from bench.report import update_readme
from bench.runner import measure
from bench.scenarios import Scenario
from bench.scenarios import all_scenarios
from bench.scenarios import upstream_scenarios
from bench.targets import DEFAULT_TARGETS
from bench.targets import ROOT
from bench.targets import SCALEOUT_TARGETS
from bench.targets import TARGETS
from bench.targets import UPSTREAM_TARGETS
from bench.targets import chatstream_available


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "-s",
        "--scenarios",
        nargs="+",
        metavar="NAME",
        help="e.g. S1-1000 S2 S3 S4-S1 S5",
    )
    p.add_argument(
        "-t",
        "--targets",
        nargs="+",
        metavar="NAME",
        choices=sorted(TARGETS),
        help="targets",
    )
    p.add_argument("--runs", type=int, help="runs per scenario and target (default 2, quick 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small N, one run: a ~1-2 minute smoke check",
    )
    p.add_argument(
        "--upstream",
        action="store_true",
        help="only the upstream scenarios (U1-100/500/1000/3000, U2; issue 11)",
    )
    p.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="tries per run while other work disturbs it (default 3; quick 1)",
    )
    p.add_argument(
        "--max-other",
        type=float,
        default=0.4,
        help="cores of other work tolerated during a run (default 0.4)",
    )
    p.add_argument(
        "--readme",
        action="store_true",
        help="also copy the table into bench/README.md (after its results marker)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record py-spy flame graphs of Python servers (needs py-spy; skews CPU)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results folder")
    return p.parse_args(argv)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _measure_clean(
    args: argparse.Namespace, name: str, sc: Scenario, logdir: Path, run: int
) -> dict[str, Any]:
    """Measure once, retrying (up to ``--attempts``) while other work disturbed it.

    A run is disturbed when processes other than the server and the generator
    used more than ``--max-other`` cores on average during the load.  If every
    attempt is disturbed, the last one is kept and marked ``disturbed``.
    """
    attempts = 1 if args.quick else args.attempts
    fig: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        t0 = time.monotonic()
        fig = measure(TARGETS[name], sc, logdir / f"try{attempt}", args.profile)
        other = fig.get("other_cpu_s", 0.0) / max(fig.get("wall_s", 1.0), 0.1)
        status = fig["error"].splitlines()[0] if "error" in fig else "ok"
        # S5 (idle) measures memory, which other work does not skew.
        if "error" not in fig and sc.kind != "idle" and other > args.max_other:
            fig["disturbed"] = round(other, 2)
            status = f"disturbed: other work used {other:.2f} cores"
        print(
            f"[run {run}.{attempt}] {sc.name:8} {name:20} {time.monotonic() - t0:5.1f} s  {status}",
            file=sys.stderr,
        )
        if "disturbed" not in fig:
            break
    fig["attempts"] = attempt
    return fig


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios and print the markdown report."""
    args = _args(argv)
    # Stop cleanly (servers and load generator included, via the runner's
    # finally blocks) on SIGTERM, and on SIGINT even when started in the background.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise_nofile_limit()  # inherited by the servers and the load generator
    runs = args.runs or (1 if args.quick else 2)
    pool = upstream_scenarios(args.quick) if args.upstream else all_scenarios(args.quick)
    scenarios = [s for s in pool if not args.scenarios or s.name in args.scenarios]
    have_cs = chatstream_available()
    chosen = args.targets or [t for t in DEFAULT_TARGETS if have_cs or TARGETS[t].peer]
    scaleout = (
        [t for t in (args.targets or SCALEOUT_TARGETS) if t in SCALEOUT_TARGETS] if have_cs else []
    )
    upstream_targets = [
        t
        for t in (args.targets or UPSTREAM_TARGETS)
        if t in UPSTREAM_TARGETS and (have_cs or TARGETS[t].peer)
    ]
    chosen = [t for t in chosen if t not in UPSTREAM_TARGETS]
    peers = [n for n, t in TARGETS.items() if t.peer]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logdir = args.out / "logs" / stamp
    results: Results = {}
    started = time.monotonic()
    for run in range(1, runs + 1):
        for sc in scenarios:
            if sc.upstream:
                names = upstream_targets
            elif sc.scaleout:
                names = scaleout
            else:
                names = [t for t in chosen if t not in SCALEOUT_TARGETS[1:]]
            for name in names:
                fig = _measure_clean(args, name, sc, logdir / f"run{run}", run)
                results.setdefault(sc.name, {}).setdefault(name, []).append(fig)
    header = "\n".join(
        [
            f"## chatstream benchmark {stamp}",
            "",
            f"{platform.node()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; {runs} run(s) per cell, "
            "cell = median (each run); server (and Redis) pinned to core 0, "
            "load generator to core 1 (S4 with 2 workers: all on both cores); "
            f"{'quick mode; ' if args.quick else ''}"
            f"total {time.monotonic() - started:.0f} s."
            + ("" if have_cs else " chatstream (wsgi.py) not present: peers only."),
        ]
    )
    text = render(results, scenarios, peers, header)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}{'-quick' if args.quick else ''}.md").write_text(text)
    if args.readme:
        update_readme(ROOT / "bench" / "README.md", text)
    (args.out / f"{stamp}{'-quick' if args.quick else ''}.json").write_text(
        json.dumps(results, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
