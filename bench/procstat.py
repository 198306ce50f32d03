"""CPU time and memory of a server's process tree, read from ``/proc``.

CPU seconds are ``utime + stime`` (fields 14 and 15 of ``/proc/PID/stat``, in
clock ticks; they cover all threads) summed over the tree; the caller takes the
difference between two samples.  Peak RSS is the sum of each process's
``VmHWM`` (its own high-water mark) — an upper bound of the tree's peak, exact
for one process.  Current RSS is the sum of ``VmRSS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses:
        # split after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(roots: list[int]) -> list[int]:
    """The given pids and all their descendants that are alive now."""
    kids = _children_map()
    out: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return [p for p in out if os.path.exists(f"/proc/{p}")]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICK


def _status_kb(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pids: list[int]) -> int:
    """Current resident set size of ``pids``, in KiB."""
    return sum(_status_kb(p, b"VmRSS:") for p in pids)


def peak_rss_kb(pids: list[int]) -> int:
    """Sum of the processes' peak resident set sizes (``VmHWM``), in KiB."""
    return sum(_status_kb(p, b"VmHWM:") for p in pids)


@dataclass(slots=True)
class Usage:
    """A before/after reading of a process tree."""

    cpu_s: float
    peak_rss_kb: int
