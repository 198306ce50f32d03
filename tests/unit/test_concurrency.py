"""Driver primitives: the interruptible sleep under both drivers."""

from __future__ import annotations

import pytest

from chatstream.concurrency import Driver


@pytest.mark.parametrize("name", ["threading", "gevent"])
def test_sleep_runs_its_course_when_not_interrupted(name):
    assert Driver(name).sleeper().sleep(0.01) is False


@pytest.mark.parametrize("name", ["threading", "gevent"])
def test_interrupt_cuts_a_long_sleep_short_and_every_later_one(name):
    driver = Driver(name)
    sleeper = driver.sleeper()
    result = []
    driver.spawn(lambda: result.append(sleeper.sleep(60)))
    driver.sleep(0.05)  # let it start sleeping
    sleeper.interrupt()
    for _ in range(200):
        if result:
            break
        driver.sleep(0.01)
    assert result == [True]  # woke long before 60 s
    assert sleeper.sleep(60) is True  # already interrupted: returns at once
