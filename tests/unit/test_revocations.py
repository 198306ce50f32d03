"""Revoked login sessions (chatstream/revocations.py)."""

from __future__ import annotations

import pytest

from chatstream import revocations
from chatstream.errors import StoreUnavailable
from tests.support.server import free_port


def test_memory_revocation_lasts_its_ttl_then_is_pruned(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(revocations.time, "monotonic", lambda: now[0])
    store = revocations.MemoryRevocations()
    store.revoke("a", 60)
    assert store.is_revoked("a") and not store.is_revoked("b")
    now[0] += 61
    assert not store.is_revoked("a")
    store.revoke("b", 60)  # a write prunes the expired ones
    assert list(store._until) == ["b"]


def test_from_config_picks_redis_only_with_a_url():
    assert isinstance(revocations.from_config(None), revocations.MemoryRevocations)
    url = "redis://127.0.0.1:1/0"
    assert isinstance(revocations.from_config(url), revocations.RedisRevocations)


@pytest.mark.parametrize("call", ["revoke", "is_revoked"])
def test_redis_unreachable_fails_closed(call):
    store = revocations.RedisRevocations(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        if call == "revoke":
            store.revoke("sid", 60)
        else:
            store.is_revoked("sid")
