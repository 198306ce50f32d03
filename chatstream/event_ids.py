"""Stream-scoped event ids: every ``id:`` names its stream and its position.

An event id is ``<tag>.<seq>``: ``tag`` is 6 characters derived from the
stream id, ``seq`` the event's position (1, 2, 3, ...). A client echoes the
last one as ``Last-Event-ID`` when it reconnects, whatever URL it comes back
on, so the server knows *which* stream to resume, not only where
(issue 10: two tabs sharing one session cookie could otherwise splice the
answer of one onto the other).

The tag is not a capability and reveals nothing of one: it is a hash of the
stream id, and it only selects among streams the caller may read already
(this session's recent streams, or the stream named in the URL). 36 bits make
two of one session's 16 recent streams share a tag with odds of about 2e-9.
It costs 7 bytes per event (``tag`` and the dot).

Plain integer ids (the first version's) are still accepted as positions.

No Flask, store or adapter here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import NamedTuple

#: base64url characters of the tag (6 x 6 = 36 bits).
TAG_CHARS = 6
_ID = re.compile(rf"(?:([A-Za-z0-9_-]{{{TAG_CHARS}}})\.)?([0-9]{{1,12}})")


def tag(stream_id: str) -> str:
    """The short tag of ``stream_id`` carried in its event ids."""
    digest = hashlib.sha256(stream_id.encode()).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()[:TAG_CHARS]


def scope(stream_id: str) -> str:
    """The prefix of every event id of ``stream_id`` (``tag`` and a dot)."""
    return tag(stream_id) + "."


class EventId(NamedTuple):
    """A parsed ``Last-Event-ID``.

    :param tag: the stream's tag, or ``None`` for a plain integer id.
    :param seq: the position of the last event the client has.
    """

    tag: str | None
    seq: int


def parse(raw: str) -> EventId | None:
    """Parse a ``Last-Event-ID``; ``None`` if it is not one of ours."""
    match = _ID.fullmatch(raw.strip())
    if match is None:
        return None
    return EventId(match.group(1), int(match.group(2)))
