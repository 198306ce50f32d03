"""The callback bridge under both drivers, cooperative and blocking producers."""

from __future__ import annotations

import threading
import time

import gevent
import pytest

import chatstream.adapters
from chatstream.adapters import CallbackBridge
from chatstream.adapters import Finish
from chatstream.adapters import GenerationRequest
from chatstream.concurrency import Driver
from chatstream.errors import Cancelled
from tests.support.client import wait_until

REQUEST = GenerationRequest(messages=[{"role": "user", "content": "hi"}], model="m")
CASES = [("threading", False), ("threading", True), ("gevent", False), ("gevent", True)]


def pause(driver_name: str, blocking: bool) -> None:
    """What a producer does between tokens: block the thread, or yield."""
    if driver_name == "gevent" and not blocking:
        gevent.sleep(0.001)
    else:
        time.sleep(0.001)


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_tokens_arrive_in_order_then_finish(driver_name, blocking):
    def producer(request, callbacks):
        for i in range(50):
            pause(driver_name, blocking)
            callbacks.on_token(f"{i} ")
        callbacks.on_end("length", {"completion_tokens": 50})

    bridge = CallbackBridge(producer, blocking=blocking, maxsize=4, driver=Driver(driver_name))
    items = list(bridge.stream(REQUEST))
    assert items[:-1] == [f"{i} " for i in range(50)]
    assert items[-1] == Finish("length", {"completion_tokens": 50})


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_producer_error_is_raised_in_consumer_after_its_tokens(driver_name, blocking):
    def producer(request, callbacks):
        callbacks.on_token("a")
        raise RuntimeError("boom")

    bridge = CallbackBridge(producer, blocking=blocking, driver=Driver(driver_name))
    got = []
    with pytest.raises(RuntimeError, match="boom"):
        for item in bridge.stream(REQUEST):
            got.append(item)
    assert got == ["a"]


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_on_error_callback_is_raised_in_consumer(driver_name, blocking):
    def producer(request, callbacks):
        callbacks.on_token("a")
        callbacks.on_error(ValueError("upstream said no"))

    bridge = CallbackBridge(producer, blocking=blocking, driver=Driver(driver_name))
    with pytest.raises(ValueError, match="upstream said no"):
        list(bridge.stream(REQUEST))


@pytest.mark.parametrize(("driver_name", "blocking"), CASES)
def test_cancel_stops_the_producer_and_buffer_is_bounded(driver_name, blocking):
    produced = []
    stopped = threading.Event()

    def producer(request, callbacks):
        try:
            for i in range(10_000):
                callbacks.on_token(str(i))
                produced.append(i)
                pause(driver_name, blocking)
        except Cancelled:
            stopped.set()
            raise

    bridge = CallbackBridge(producer, blocking=blocking, maxsize=8, driver=Driver(driver_name))
    iterator = bridge.stream(REQUEST)
    assert next(iterator) == "0"
    # Give the producer time to run ahead: it must stop at the buffer bound.
    Driver(driver_name).sleep(0.05)
    assert len(produced) <= 8 + 2
    bridge.close()
    with pytest.raises(StopIteration):
        next(iterator)
    wait_until(stopped.is_set, timeout=10, sleep=Driver(driver_name).sleep)
    assert len(produced) < 10_000


def test_blocking_producer_does_not_block_the_hub():
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.005)

    def producer(request, callbacks):
        for i in range(5):
            time.sleep(0.02)  # a real blocking call, not gevent's
            callbacks.on_token(str(i))

    tick = gevent.spawn(ticker)
    try:
        bridge = CallbackBridge(producer, blocking=True, driver=Driver("gevent"))
        items = list(bridge.stream(REQUEST))
    finally:
        tick.kill()
    assert items[:-1] == ["0", "1", "2", "3", "4"]
    # The hub kept running other greenlets while the producer thread blocked.
    assert len(ticks) > 5


def test_returning_without_on_end_counts_as_stop():
    bridge = CallbackBridge(lambda r, cb: cb.on_token("x"), driver=Driver("threading"))
    assert list(bridge.stream(REQUEST)) == ["x", Finish("stop")]


def test_the_plugin_surface_is_importable_from_the_adapters_package():
    for name in ("Adapter", "Finish", "GenerationRequest", "CallbackBridge", "load_factory"):
        assert name in chatstream.adapters.__all__
        assert getattr(chatstream.adapters, name) is not None
