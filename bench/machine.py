"""Whole-machine CPU accounting, to spot interference from other processes.

This machine is shared (other test suites, browsers...).  Two defences:
:func:`wait_quiet` holds a measurement back until the machine has been mostly
idle for a moment, and the runner reports "other CPU" — machine-wide busy time
(``/proc/stat``) minus the server's and the load generator's — so that a run
disturbed by a neighbour is visible in the table instead of silently skewing it.
"""

from __future__ import annotations

import os
import time

_TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds spent in processes (user, nice, system) on all cores, since boot."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice.  Only
    # process time counts: loopback TCP work done in softirq context is not
    # charged to any process, so including it would count our own traffic as
    # "other"; steal and guest time are not processes of this machine.
    return sum(fields[:3]) / _TICK


def wait_quiet(max_busy: float = 0.25, window: float = 0.5, max_wait: float = 5.0) -> float:
    """Wait until the machine is busy for at most ``max_busy`` cores over ``window``.

    :param max_busy: tolerated busy cores (0.15 = 15% of one core).
    :param window: sampling window in seconds.
    :param max_wait: give up (and measure anyway) after this many seconds.
    :returns: the busy cores of the last window.
    """
    stop = time.monotonic() + max_wait
    while True:
        before = busy_seconds()
        time.sleep(window)
        busy = (busy_seconds() - before) / window
        if busy <= max_busy or time.monotonic() >= stop:
            return busy
