"""Start pacing: new generations wait while the event loop runs late."""

from __future__ import annotations

import json
import threading
import time

import gevent
import gevent.monkey
import pytest

from chatstream import config
from chatstream.concurrency import Driver
from chatstream.errors import ConfigError
from chatstream.generation.pacing import INCREASE
from chatstream.generation.pacing import MIN_WINDOW
from chatstream.generation.pacing import StartPacer
from tests.support.client import wait_until
from tests.unit.test_generation import ScriptedFactory
from tests.unit.test_generation import make_runner

PROMPT = [{"role": "user", "content": "hi"}]


def quiet_pacer(max_lag_ms=10, driver="threading"):
    """A pacer whose ticker never runs: the test calls :meth:`observe` itself."""
    pacer = StartPacer(Driver(driver), {"START_MAX_LAG_MS": max_lag_ms, "PACING_TICK_MS": 5})
    pacer._alive = True  # as if ticking
    return pacer


def enter_in_thread(pacer, entered, name):
    def go():
        pacer.enter()
        entered.append(name)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_off_by_default_and_never_waits():
    pacer = StartPacer(Driver("threading"), {})
    assert not pacer.enabled
    for _ in range(3):
        pacer.enter()
    pacer.observe(5.0)  # however late: off means off
    pacer.enter()
    assert pacer.active == 4 and not pacer.waiting


def test_on_time_loop_has_no_window():
    pacer = quiet_pacer()
    for _ in range(100):
        pacer.enter()
    pacer.observe(0.001)
    assert pacer.window is None and pacer.active == 100


def test_late_tick_caps_starts_then_admits_in_arrival_order():
    pacer = quiet_pacer()
    for _ in range(20):
        pacer.enter()
    pacer.observe(0.050)  # 50 ms late
    assert pacer.window == 20 * 0.75
    entered = []
    threads = []
    for n in range(3):  # one at a time: arrival order is the order of names
        threads.append(enter_in_thread(pacer, entered, n))
        wait_until(lambda n=n: len(pacer.waiting) == n + 1)
    time.sleep(0.05)
    assert entered == []  # 20 running >= window 15: all wait

    for _ in range(6):  # five generations end: 15 running, window 15
        pacer.leave()
    wait_until(lambda: len(entered) == 1)  # one fits after the sixth
    pacer.leave()  # one more ends: the next in arrival order starts
    wait_until(lambda: len(entered) == 2)
    pacer.leave()
    wait_until(lambda: len(entered) == 3)
    assert entered == [0, 1, 2]
    for thread in threads:
        thread.join(5)
    pacer.observe(0.0)  # on time and nobody waits: no window
    assert pacer.window is None and pacer.active == 15


def test_on_time_tick_grows_the_window_while_starts_wait():
    pacer = quiet_pacer()
    for _ in range(20):
        pacer.enter()
    pacer.observe(0.050)  # late: window 15
    entered: list[int] = []
    threads = [enter_in_thread(pacer, entered, n) for n in range(6)]
    wait_until(lambda: len(pacer.waiting) == 6)
    pacer.observe(0.0)  # on time, starts waiting: the window grows by INCREASE
    assert pacer.window == 20 * 0.75 + INCREASE
    for _ in range(3):  # 17 running: two more fit under 19
        pacer.leave()
    wait_until(lambda: len(entered) == 2)
    assert pacer.active == 19 and len(pacer.waiting) == 4
    pacer.release_all()
    for thread in threads:
        thread.join(5)
    assert sorted(entered) == list(range(6))


def test_window_never_below_the_floor():
    pacer = quiet_pacer()
    pacer.enter()
    for _ in range(10):
        pacer.observe(1.0)
    assert pacer.window == MIN_WINDOW
    for _ in range(MIN_WINDOW - 1):
        pacer.enter()  # returns: within the floor
    assert pacer.active == MIN_WINDOW


def test_release_all_lets_every_waiter_start():
    pacer = quiet_pacer()
    for _ in range(MIN_WINDOW):
        pacer.enter()
    pacer.observe(1.0)
    entered = []
    threads = [enter_in_thread(pacer, entered, n) for n in range(4)]
    wait_until(lambda: len(pacer.waiting) == 4)
    pacer.release_all()
    for thread in threads:
        thread.join(5)
    assert sorted(entered) == [0, 1, 2, 3] and pacer.active == MIN_WINDOW + 4


def test_a_stalled_loop_holds_new_starts_until_it_catches_up():
    """Fault: the hub stalls (a CPU hog, a blocking call). New generations
    wait while the ticks come late, then all start, in arrival order."""
    stall = gevent.monkey.get_original("time", "sleep")  # blocks the whole loop
    driver = Driver("gevent")
    pacer = StartPacer(driver, {"START_MAX_LAG_MS": 10, "PACING_TICK_MS": 5})
    started = []

    def newcomer(n):
        pacer.enter()
        started.append(n)

    def stalled_loop():
        for _ in range(MIN_WINDOW):
            pacer.enter()  # running generations fill the floor
        gevent.sleep(0)  # the ticker starts and arms its first tick
        stall(0.1)
        gevent.sleep(0.001)  # the ticker's tick (due first) runs 95 ms late
        assert pacer.window == MIN_WINDOW
        newcomers = [gevent.spawn(newcomer, n) for n in range(5)]
        for _ in range(3):
            stall(0.1)  # every tick in between is late
            gevent.sleep(0.001)
        assert started == [] and len(pacer.waiting) == 5, pacer.lag_s
        for _ in range(MIN_WINDOW):
            pacer.leave()  # the running ones end: room for the newcomers
        gevent.joinall(newcomers, timeout=5)
        assert started == [0, 1, 2, 3, 4]
        for _ in range(5):
            pacer.leave()

    gevent.spawn(stalled_loop).get(timeout=10)
    wait_until(lambda: not pacer._alive, sleep=gevent.sleep)  # idle and on time: stops
    assert pacer.window is None


def test_runner_streams_exist_while_paced_and_a_cancelled_one_never_starts():
    factory = ScriptedFactory(["a", "b"], block=True)
    runner, store = make_runner(factory, START_MAX_LAG_MS=10)
    pacer = runner.pacer
    pacer._alive = True  # no ticker: the test decides when the loop is late
    pacer.window = 1.0
    first = runner.start(PROMPT)
    wait_until(lambda: pacer.active == 1)
    held = runner.start(PROMPT)
    wait_until(lambda: len(pacer.waiting) == 1)
    reader = store.open_reader(held)  # the POST's stream is there; no token yet
    assert reader.read(0, 0.05).data.count(b"newToken") == 0
    runner.cancel(held)
    pacer.leave()  # make room (as if another generation ended)
    data = b""
    deadline = time.monotonic() + 5
    while b"event: end" not in data and time.monotonic() < deadline:
        chunk = reader.read(0, 0.5)
        data = chunk.data
    assert b"newToken" not in data
    end = data.split(b"event: end\n", 1)[1].split(b"data: ", 1)[1].split(b"\n", 1)[0]
    assert json.loads(end)["finish_reason"] == "cancelled"
    runner.cancel(first)


@pytest.mark.parametrize("value", ["-1", "10001"])
def test_setting_is_checked(value):

    values = config.defaults()
    values["START_MAX_LAG_MS"] = int(value)
    with pytest.raises(ConfigError, match="CHATSTREAM_START_MAX_LAG_MS"):
        config.validate(values)


@pytest.mark.parametrize(
    ("adapter", "given", "expected"),
    [
        ("openai", None, 3),
        ("demo", None, 0),
        ("langchain", None, 0),
        ("openai", "0", 0),
        ("demo", "12", 12),
    ],
)
def test_start_pacing_defaults_per_adapter(adapter, given, expected):
    values = config.defaults()
    values["ADAPTER"] = adapter
    if given is not None:
        values["START_MAX_LAG_MS"] = given
    config.validate(values)
    assert values["START_MAX_LAG_MS"] == expected
    assert config.summary(values).endswith(
        f"start_pacing={expected}ms" if expected else "start_pacing=off"
    )
