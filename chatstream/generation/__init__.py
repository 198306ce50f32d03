"""Generations: adapter tokens -> framed events -> stream store.

* :mod:`.runner`: :class:`Runner`, what the views call: start, cancel, shutdown.
* :mod:`.admission`: may a request start now (model, options, caps)?
* :mod:`.run`: the run loop of one generation, token by token into its stream.
* :mod:`.outcomes`: the terminal event, and :data:`CancelReason`.
* :mod:`.janitor`: cancels generations past their timeout or grace periods.
* :mod:`.pacing`: holds new generations while the event loop runs late (opt-in).
"""

from __future__ import annotations

from .outcomes import CancelReason
from .runner import Runner

__all__ = ["CancelReason", "Runner"]
