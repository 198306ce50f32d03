"""Peer servers that implement chatstream's HTTP contract the usual way.

Each has the same fake model (``tokens`` tokens ``"<i> "``, ``delay_ms`` apart,
the first at once) and the same events (``retry``, ``newToken``, ``end``).
"""

from __future__ import annotations
