"""Benchmark harness for chatstream and its peers.

``python -m bench`` starts each target server pinned to one core, drives it with
the asyncio load generator (:mod:`bench.loadgen`) pinned to the other, and prints
a markdown table (also written under ``bench/results/``).  See ``bench/README.md``.
"""

from __future__ import annotations
