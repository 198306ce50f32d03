"""The guarded gevent worker of gunicorn.conf.py (chatstream/guarded_worker.py): its
settings, which peers it caps, and its refusal. The behaviour under a real
attack is in tests/faults/test_connections.py."""

from __future__ import annotations

import json
import logging
from collections import Counter

import gevent
import pytest
from gevent.server import StreamServer
from gunicorn.config import Config
from gunicorn.workers.ggevent import GeventWorker

from chatstream import create_app
from chatstream import guarded_worker
from chatstream.errors import ConfigError
from tests.conftest import UNIT_CONFIG


class FakeApp:
    def __init__(self, wsgi):
        self._wsgi = wsgi

    def wsgi(self):
        return self._wsgi


def make_worker(wsgi, allowed="127.0.0.1,::1"):
    cfg = Config()
    cfg.set("forwarded_allow_ips", allowed)
    worker = guarded_worker.GuardedGeventWorker(
        0, 0, [], FakeApp(wsgi), 30, cfg, logging.getLogger("test")
    )
    worker.load_wsgi()
    worker.tmp.close()
    return worker


def test_settings_come_from_the_apps_validated_config():
    app = create_app({**UNIT_CONFIG, "HEADER_TIMEOUT_S": 2.5, "MAX_CONNECTIONS_PER_ADDRESS": 7})
    worker = make_worker(app)
    assert (worker.header_timeout, worker.max_per_address) == (2.5, 7)


def test_defaults_and_bounds():
    app = create_app(UNIT_CONFIG)
    assert app.config["CHATSTREAM_HEADER_TIMEOUT_S"] == 10
    assert app.config["CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS"] == 100
    with pytest.raises(ConfigError, match="CHATSTREAM_HEADER_TIMEOUT_S"):
        create_app({**UNIT_CONFIG, "HEADER_TIMEOUT_S": 0})
    with pytest.raises(ConfigError, match="CHATSTREAM_MAX_CONNECTIONS_PER_ADDRESS"):
        create_app({**UNIT_CONFIG, "MAX_CONNECTIONS_PER_ADDRESS": -1})


def test_another_wsgi_app_gets_the_defaults():
    worker = make_worker(lambda environ, start_response: [])
    assert (worker.header_timeout, worker.max_per_address) == (10.0, 100)


def test_only_direct_untrusted_peers_are_capped():
    # Plain addresses: gunicorn 23.0 (the floor) takes no networks in forwarded_allow_ips.
    worker = make_worker(create_app(UNIT_CONFIG), allowed="127.0.0.1,::1,10.1.2.3")
    assert worker._guarded("203.0.113.9") and worker._guarded("127.0.0.3")
    assert not worker._guarded("127.0.0.1") and not worker._guarded("::1")
    assert not worker._guarded("10.1.2.3")  # a trusted proxy
    assert worker._guarded("10.1.2.4")
    assert not worker._guarded(None)  # a UNIX socket


def test_behind_a_proxy_or_trusting_all_there_is_no_cap():
    proxied = make_worker(create_app({**UNIT_CONFIG, "PROXY_FIX": 1}))
    assert proxied.max_per_address == 0 and not proxied._guarded("203.0.113.9")
    anywhere = make_worker(create_app(UNIT_CONFIG), allowed="*")
    assert not anywhere._guarded("203.0.113.9")
    off = make_worker(create_app({**UNIT_CONFIG, "MAX_CONNECTIONS_PER_ADDRESS": 0}))
    assert not off._guarded("203.0.113.9")


def test_peer_host():
    assert guarded_worker.peer_host(("203.0.113.9", 5000)) == "203.0.113.9"
    assert guarded_worker.peer_host(("::1", 5000, 0, 0)) == "::1"
    assert guarded_worker.peer_host("") is None


def test_the_refusal_is_a_complete_json_429():
    head, _, body = guarded_worker.REFUSAL.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 ") and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["error"]["code"] == "too_many_connections"


def test_with_pacing_the_worker_accepts_one_connection_and_starts_few_requests_per_turn():
    paced = make_worker(create_app({**UNIT_CONFIG, "START_MAX_LAG_MS": 3}))
    assert paced.max_accept == 1
    assert paced.gate is not None and paced.gate.per_turn == guarded_worker.REQUESTS_PER_TURN
    # The demo's default (no pacing), and an app that is not chatstream's: gevent's order.
    for worker in (make_worker(create_app(UNIT_CONFIG)), make_worker(lambda e, s: [])):
        assert worker.max_accept is None and worker.gate is None


def test_run_sets_the_accept_count_of_the_servers_gunicorn_builds(monkeypatch):
    monkeypatch.setattr(StreamServer, "max_accept", StreamServer.max_accept)  # restored after
    monkeypatch.setattr(GeventWorker, "run", lambda self: None)
    make_worker(create_app(UNIT_CONFIG)).run()
    assert StreamServer.max_accept == 100  # gevent's default, untouched
    make_worker(create_app({**UNIT_CONFIG, "START_MAX_LAG_MS": 3})).run()
    assert StreamServer.max_accept == 1


def test_the_turn_gate_lets_a_few_through_per_loop_turn_in_arrival_order():
    gate = guarded_worker.TurnGate(2)
    loop = gevent.get_hub().loop
    passed: list[tuple[int, int]] = []

    def request(n: int) -> None:
        gate.wait()
        passed.append((n, loop.iteration))

    # Seven requests become ready in one turn (as handlers do in a burst).
    greenlets = [gevent.spawn(request, n) for n in range(7)]
    gevent.joinall(greenlets, timeout=10)
    assert [n for n, _ in passed] == list(range(7))
    per_turn = Counter(turn for _, turn in passed)
    assert max(per_turn.values()) <= 2 and len(per_turn) >= 4


def test_a_request_killed_while_it_waits_leaves_the_line():
    gate = guarded_worker.TurnGate(1)
    passed: list[int] = []

    def request(n: int) -> None:
        gate.wait()
        passed.append(n)

    greenlets = [gevent.spawn(request, n) for n in range(4)]
    gevent.sleep(0)  # all four have called wait(): one passed, three wait
    greenlets[1].kill()
    gevent.joinall(greenlets, timeout=10)
    assert passed == [0, 2, 3]
    assert not gate._waiting


def test_send_first_socket_delivers_small_and_buffer_filling_writes_whole():
    import gevent.socket

    a, b = gevent.socket.socketpair()
    a.__class__ = guarded_worker.SendFirstSocket
    received = bytearray()

    def drain():
        while data := b.recv(65536):
            received.extend(data)

    reader = gevent.spawn(drain)
    big = bytes(range(256)) * 16384  # 4 MiB: more than a socket buffer takes at once
    a.sendall(b"data: 1\n\n")
    a.sendall(big)
    a.sendall(memoryview(b"tail"))
    a.close()
    reader.join(timeout=30)
    b.close()
    assert bytes(received) == b"data: 1\n\n" + big + b"tail"


def test_plain_connections_get_the_send_first_socket(monkeypatch):
    import gevent.socket

    seen = []
    monkeypatch.setattr(
        GeventWorker, "handle", lambda self, listener, client, addr: seen.append(type(client))
    )
    worker = make_worker(create_app(UNIT_CONFIG))
    a, b = gevent.socket.socketpair()
    worker.handle(None, a, ("127.0.0.1", 5000))
    assert seen == [guarded_worker.SendFirstSocket]
    a.close()
    b.close()
