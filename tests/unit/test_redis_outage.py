"""The outage tracker: budget, backoff and the settling window after a gap."""

from __future__ import annotations

import redis

from chatstream.store.redis.outage import OutageTracker

DOWN = redis.ConnectionError("refused")


def test_the_budget_runs_out_once_per_outage_counted_from_the_last_good_reply():
    tracker = OutageTracker("writes", budget_s=5, gap_s=1)
    tracker.last_ok -= 4  # the failing command hung 4 s before it failed
    assert tracker.failed(DOWN) is False and tracker.down
    tracker.last_ok -= 2  # 6 s since the last good reply
    assert tracker.failed(DOWN) is True
    assert tracker.failed(DOWN) is False  # streams are ended once, not at every try
    assert tracker.ok() is not None and not tracker.down
    tracker.last_ok -= 6
    assert tracker.failed(DOWN) is True  # a new outage has its own budget


def test_backoff_grows_and_is_capped():
    tracker = OutageTracker("reads", budget_s=30, gap_s=1)
    delays = []
    for _ in range(8):
        tracker.failed(DOWN)
        delays.append(tracker.delay())
    assert delays == sorted(delays) and delays[0] < 0.2 and delays[-1] == 1.0


def test_not_settled_right_after_a_failure_or_a_silent_gap():
    tracker = OutageTracker("writes", budget_s=30, gap_s=1)
    tracker.steady_since -= 10
    assert tracker.settled(5)
    tracker.failed(DOWN)
    assert not tracker.settled(5)
    tracker.ok()
    assert not tracker.settled(5)  # others had no time to beat again
    tracker.steady_since -= 10
    assert tracker.settled(5)
    tracker.last_ok -= 3  # no reply for 3 s (this process or Redis stalled), no error
    assert not tracker.settled(5)
    tracker.ok()
    assert not tracker.settled(5)
