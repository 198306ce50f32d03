"""Driver primitives under both drivers: choice, interruptible sleep, hand-offs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chatstream.concurrency import Driver
from chatstream.concurrency import Empty
from chatstream.concurrency import GeventDriver
from chatstream.concurrency import ThreadDriver
from chatstream.errors import Cancelled
from tests.support.client import wait_until


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
    wait_until(lambda: result, timeout=10, sleep=driver.sleep)
    assert result == [True]  # woke long before 60 s
    assert sleeper.sleep(60) is True  # already interrupted: returns at once


def test_a_driver_is_chosen_by_name_once():
    assert isinstance(Driver("threading"), ThreadDriver)
    assert isinstance(Driver("gevent"), GeventDriver)
    assert Driver().name == "threading"  # this test process is not monkey-patched
    with pytest.raises(ValueError, match="asyncio"):
        Driver("asyncio")


#: (driver, producer on a native thread): the three hand-offs, gevent's two.
HANDOFFS = [("threading", False), ("gevent", False), ("gevent", True)]


@pytest.mark.parametrize(("name", "native_producer"), HANDOFFS)
def test_channel_hands_over_in_order_and_bounds_the_producer(name, native_producer):
    driver = Driver(name)
    channel = driver.channel(4, native_producer=native_producer)
    put = []

    def producer():
        for i in range(20):
            channel.put(i)
            put.append(i)

    (driver.spawn_native if native_producer else driver.spawn)(producer)
    assert channel.get(timeout=10) == 0
    driver.sleep(0.05)  # the producer runs ahead as far as the bound lets it
    assert len(put) <= 1 + 4 + 1
    assert [channel.get(timeout=10) for _ in range(19)] == list(range(1, 20))
    with pytest.raises(Empty):
        channel.get(timeout=0.05)


@pytest.mark.parametrize(("name", "native_producer"), HANDOFFS)
def test_close_wakes_a_waiting_consumer_and_stops_the_producer(name, native_producer):
    driver = Driver(name)
    channel = driver.channel(1, native_producer=native_producer)
    outcome = []

    def consumer():
        try:
            channel.get(timeout=30)
        except Cancelled:
            outcome.append("cancelled")

    driver.spawn(consumer)
    driver.sleep(0.05)  # the consumer waits on an empty channel
    channel.close()
    wait_until(lambda: outcome, timeout=10, sleep=driver.sleep)
    assert outcome == ["cancelled"]
    with pytest.raises(Cancelled):
        channel.put("late")


PACKAGE = Path(__file__).resolve().parents[2] / "chatstream"


def test_drivers_neither_import_in_methods_nor_branch_on_their_name():
    for path in (PACKAGE / "concurrency").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                assert not isinstance(inner, ast.Import | ast.ImportFrom), (path.name, node.name)
                if isinstance(inner, ast.Compare):
                    names = [n.attr for n in ast.walk(inner) if isinstance(n, ast.Attribute)]
                    assert "name" not in names, (path.name, node.name)


def test_adapters_are_handed_their_driver_and_never_look_it_up():
    for path in (PACKAGE / "adapters").glob("*.py"):
        assert "get_driver" not in path.read_text(), path.name
