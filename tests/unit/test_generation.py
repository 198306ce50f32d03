"""The runner: tokens framed into the store, terminal events, lifecycle limits."""

from __future__ import annotations

import gc
import json
import threading
import time
import weakref

import pytest

from chatstream import config
from chatstream.adapters.base import Finish
from chatstream.adapters.demo import DemoFactory
from chatstream.concurrency import Driver
from chatstream.errors import BadRequest
from chatstream.errors import Overloaded
from chatstream.errors import UpstreamRateLimited
from chatstream.generation import Runner
from chatstream.generation.outcomes import terminal
from chatstream.store.buffer import OwnedStream
from chatstream.store.memory import MemoryStreamStore
from tests.support.client import wait_until

PROMPT = [{"role": "user", "content": "hi"}]


def seq_of(event_id):
    """The position in a stream-scoped id ``<tag>.<seq>``."""
    return int(event_id.rsplit(".", 1)[-1])


class ScriptedFactory:
    """Adapters that yield a script; ``close()`` is recorded."""

    name = "scripted"

    def __init__(self, script, *, block=False):
        self.script = script
        self.block = block
        self.closed = threading.Event()

    def check_options(self, options):
        return options

    def __call__(self):
        factory = self

        class Adapter:
            def stream(self, request):
                for item in factory.script:
                    if isinstance(item, Exception):
                        raise item
                    yield item
                if factory.block:
                    factory.closed.wait(30)

            def close(self):
                factory.closed.set()

        return Adapter()


def make_runner(factory, driver_name="threading", ttl_s=60, **overrides):
    values = config.defaults()
    values.update({"ADAPTER": "demo", "DEMO_DELAY_MS": 0, "SWEEP_S": 0.02, **overrides})
    config.validate(values)
    store = MemoryStreamStore(Driver(driver_name), ttl_s=ttl_s)
    return Runner(store, factory, Driver(driver_name), values), store


def events(store, stream_id, timeout=10):
    reader = store.open_reader(stream_id)
    data, after = b"", 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = reader.read(after, 0.5)
        data += chunk.data
        after = chunk.last_id
        if chunk.finished:
            break
    reader.close()
    parsed = []
    for block in data.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        parsed.append((seq_of(fields["id"]), fields["event"], json.loads(fields["data"])))
    return parsed


def test_tokens_then_end_with_usage():
    runner, store = make_runner(
        ScriptedFactory(["a", "", "b", Finish("stop", {"total_tokens": 2})])
    )
    sid = runner.start(PROMPT)
    assert events(store, sid) == [
        (1, "newToken", {"token": "a"}),
        (2, "newToken", {"token": "b"}),
        (3, "end", {"finish_reason": "stop", "usage": {"total_tokens": 2}}),
    ]


def test_upstream_error_becomes_error_event_after_tokens():
    runner, store = make_runner(ScriptedFactory(["a", UpstreamRateLimited("slow down")]))
    sid = runner.start(PROMPT)
    assert events(store, sid)[-1] == (
        2,
        "error",
        {"code": "upstream_rate_limited", "message": "slow down"},
    )


def test_unexpected_exception_leaks_no_detail(caplog):
    runner, store = make_runner(ScriptedFactory([KeyError("secret internals")]))
    sid = runner.start(PROMPT)
    last = events(store, sid)[-1]
    assert last[1] == "error" and last[2]["code"] == "generation_failed"
    assert "secret" not in json.dumps(last)


def test_event_count_is_bounded_with_length():
    runner, store = make_runner(ScriptedFactory([str(i) for i in range(100)]), MAX_EVENTS=10)
    got = events(store, runner.start(PROMPT))
    assert len(got) == 10 and got[-1] == (10, "end", {"finish_reason": "length"})


def test_cancel_closes_adapter_and_ends_cancelled():
    factory = ScriptedFactory(["a"], block=True)
    runner, store = make_runner(factory)
    sid = runner.start(PROMPT)
    assert runner.cancel(sid) is True
    assert factory.closed.wait(5)
    assert events(store, sid)[-1][1:] == ("end", {"finish_reason": "cancelled", "reason": "client"})
    assert sid not in runner.running


def test_no_reader_within_grace_cancels():
    factory = ScriptedFactory([], block=True)
    runner, store = make_runner(factory, ATTACH_GRACE_S=0.1)
    sid = runner.start(PROMPT)
    assert factory.closed.wait(10)
    assert events(store, sid)[-1][1:] == (
        "end",
        {"finish_reason": "cancelled", "reason": "no_reader"},
    )


def test_all_readers_leaving_cancels_after_grace():
    factory = ScriptedFactory(["a"], block=True)
    runner, store = make_runner(factory, DETACH_GRACE_S=0.1)
    sid = runner.start(PROMPT)
    store.open_reader(sid).close()
    assert factory.closed.wait(10)


def test_generation_timeout_is_an_error_event():
    factory = ScriptedFactory(["a"], block=True)
    runner, store = make_runner(factory, GENERATION_TIMEOUT_S=0.1)
    sid = runner.start(PROMPT)
    last = events(store, sid)[-1]
    assert last[1] == "error" and last[2]["code"] == "generation_timeout"


def test_unknown_model_and_bad_options_are_refused():
    runner, _ = make_runner(DemoFactory({"DEMO_DELAY_MS": 0}))
    with pytest.raises(BadRequest, match="Unknown model"):
        runner.start(PROMPT, model="gpt-99")
    with pytest.raises(BadRequest, match="tokens"):
        runner.start(PROMPT, options={"tokens": -1})


def test_too_many_running_streams_is_overloaded():
    factory = ScriptedFactory([], block=True)
    runner, _ = make_runner(factory, MAX_STREAMS=2)
    first = runner.start(PROMPT)
    runner.start(PROMPT)
    with pytest.raises(Overloaded) as info:
        runner.start(PROMPT)
    assert info.value.headers["Retry-After"]
    runner.cancel(first)


class RecordingFactory(DemoFactory):
    """Demo adapters, each watched through a weak reference."""

    def __init__(self):
        super().__init__({"DEMO_DELAY_MS": 0})
        self.adapters = []

    def __call__(self):
        adapter = super().__call__()
        self.adapters.append(weakref.ref(adapter))
        return adapter


@pytest.mark.parametrize("driver_name", ["threading", "gevent"])
def test_finished_streams_and_generations_are_freed_without_the_cycle_collector(driver_name):
    """Reference counting alone frees an ended generation, then its expired stream.

    The figure: of ``N`` finished streams, how many generations, adapters and
    (once expired and swept) streams are still alive with the collector off.
    """
    n = 20
    driver = Driver(driver_name)
    factory = RecordingFactory()
    runner, store = make_runner(factory, driver_name)
    gc.collect()
    gc.disable()
    try:
        sids, generations = [], []
        for _ in range(n):  # 50 ms apart: still running when we take the weak reference
            sid = runner.start(PROMPT, options={"tokens": 3, "delay_ms": 50})
            generations.append(weakref.ref(runner.running[sid]))
            sids.append(sid)
        for sid in sids:
            assert events(store, sid)[-1][1] == "end"
        wait_until(lambda: not runner.running, timeout=10, sleep=driver.sleep)

        def alive(refs):
            return sum(ref() is not None for ref in refs)

        # Ended: the generation and its adapter go at once (the stream stays readable).
        settle(lambda: alive(generations) + alive(factory.adapters) == 0, driver)
        assert (alive(generations), alive(factory.adapters)) == (0, 0)
        assert store.status(sids[0])[1] is True
        # Expired and swept: the stream goes too.
        store.ttl_s = 0
        assert store.sweep() == n
        wanted = set(sids)
        streams = [o for o in gc.get_objects() if isinstance(o, OwnedStream)]
        assert sum(s.stream_id in wanted for s in streams) == 0
    finally:
        gc.enable()


def settle(predicate, driver, timeout=3):
    """Wait a while for ``predicate``; the assertion after it says what was found."""
    try:
        wait_until(predicate, timeout=timeout, sleep=driver.sleep)
    except AssertionError:
        pass


@pytest.mark.parametrize(
    ("cancel_reason", "event", "data"),
    [
        ("client", "end", {"finish_reason": "cancelled", "reason": "client"}),
        ("no_reader", "end", {"finish_reason": "cancelled", "reason": "no_reader"}),
        ("timeout", "error", {"code": "generation_timeout"}),
        ("store_unavailable", "error", {"code": "store_unavailable"}),
        ("shutdown", "error", {"code": "server_shutdown"}),
    ],
)
def test_each_cancel_reason_has_its_terminal_event(cancel_reason, event, data):
    outcome = terminal(cancel_reason, Finish("stop"), None, 7)
    fields = dict(line.split(": ", 1) for line in outcome.frame.decode().strip().split("\n"))
    assert (fields["id"], fields["event"]) == ("7", event)
    assert data.items() <= json.loads(fields["data"]).items()
    assert outcome.reason == ("cancelled" if event == "end" else "error")
