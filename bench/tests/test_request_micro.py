"""``python -m bench.request_micro`` runs its chats to the end and prints its table.

It runs in a process of its own (it patches the standard library with
gevent). No timing is asserted: the figures only have to be there.
"""

from __future__ import annotations

import re
import subprocess
import sys

from bench.targets import ROOT


def test_request_micro_prints_a_figure_per_case():
    done = subprocess.run(
        [sys.executable, "-m", "bench.request_micro", "--chats", "20", "--rounds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(
        r"^\| (fresh|browser) \| (\d+) \| (\d+) \| (\d+) \((\d+) · (\d+)\) \|$", done.stdout, re.M
    )
    assert [row[0] for row in rows] == ["fresh", "browser"], done.stdout
    for _, post, get, total, *_ in rows:
        assert int(post) > 0 and int(get) > 0
        assert abs(int(total) - int(post) - int(get)) <= 1  # each figure rounded
