"""A user-supplied adapter, loaded by dotted path in test_config."""

from __future__ import annotations


class Adapter:
    def stream(self, request):
        yield "plugged"

    def close(self):
        pass


def factory(config):
    return Adapter
