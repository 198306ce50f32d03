"""The per-app state: store, runner and driver, kept in ``app.extensions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from .concurrency import Driver
from .generation import Runner
from .readers import Readers
from .streams import StreamStore


@dataclass(eq=False)
class Chatstream:
    """What ``app.extensions["chatstream"]`` holds."""

    store: StreamStore
    runner: Runner
    driver: Driver
    adapter_name: str
    config: dict[str, Any]
    #: The open SSE readers: count, heartbeat, draining (:mod:`chatstream.readers`).
    readers: Readers


def state() -> Chatstream:
    """The current app's chatstream state."""
    ext: Chatstream = current_app.extensions["chatstream"]
    return ext
