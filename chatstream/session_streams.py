"""The streams this browser submitted, for the id-less ``/api/streaming``.

The seed's contract is ``POST /api/streaming`` then
``new EventSource('/api/streaming')``: the GET names no stream, so the signed
session cookie says which streams this browser submitted. Two tabs of one
browser share that cookie, so one "latest stream" is not enough (issue 10):
the session keeps its :data:`RECENT` latest stream ids, and a request
without a stream id resolves as follows.

* **With a stream-scoped** ``Last-Event-ID`` (``<tag>.<seq>``, see
  :mod:`chatstream.event_ids`): the stream of this session whose tag it
  carries, else ``404``. A reconnect resumes *its* stream, whatever the
  other tabs submitted since. Only this session's streams are candidates,
  so an id never opens a stream the cookie does not cover.
* **With a plain integer** ``Last-Event-ID`` (the first version's ids): the
  latest stream, as before.
* **Without** ``Last-Event-ID`` (a first GET): the *oldest stream of this
  session that no reader has opened yet* and that is younger than
  ``ATTACH_GRACE_S`` (older unread ones are cancelled by then); if there is
  none, the latest (a reload replays the last answer). "Opened" is known two
  ways: the store's reader presence (cluster-wide, what tells two tabs'
  concurrent GETs apart) and the session's own ``claimed`` tags (set when
  this session's GET or POST form served the stream; the Redis store forgets
  the presence of a finished stream read on its owner). Two tabs that each
  POST and then GET get their own answers in every order but one: A POSTs,
  B POSTs, *B* GETs first, then A. Nothing in those two GETs tells them
  apart; clients that can should use ``stream_url``.

Two POSTs racing from two tabs may each write the cookie with only their own
new id (the cookie is last-writer-wins); the lost one stays readable through
its ``stream_url``.
"""

from __future__ import annotations

import logging

from . import event_ids
from .errors import BadRequest
from .errors import NotFound
from .session import session
from .store import StreamStore

log = logging.getLogger(__name__)

#: Session key of the recent stream ids (oldest first).
STREAM_IDS_KEY = "streams"
#: The first version's key: the latest stream id only (cookies issued before).
LEGACY_KEY = "stream"
#: Session key of the tags of recent streams this session has read.
CLAIMED_KEY = "claimed"
#: Stream ids kept per session: about 43 cookie bytes each (and 9 per claim).
RECENT = 16


def recent() -> list[str]:
    """This session's recent stream ids, oldest first."""
    ids = session.get(STREAM_IDS_KEY)
    if isinstance(ids, list):
        return [i for i in ids if isinstance(i, str)]
    legacy = session.get(LEGACY_KEY)
    return [legacy] if isinstance(legacy, str) else []


def remember(stream_id: str, *, claimed: bool = False) -> None:
    """Add a stream this session just submitted (``claimed``: read in the same response)."""
    ids = [i for i in recent() if i != stream_id]
    session[STREAM_IDS_KEY] = [*ids[-(RECENT - 1) :], stream_id]
    session.pop(LEGACY_KEY, None)
    if claimed:
        claim(stream_id)


def _claimed() -> list[str]:
    tags = session.get(CLAIMED_KEY)
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def claim(stream_id: str) -> None:
    """Note that this session read ``stream_id`` (if it is one of its streams)."""
    ids = recent()
    if stream_id not in ids:
        return
    tag = event_ids.tag(stream_id)
    tags = _claimed()
    if tag not in tags:
        current = {event_ids.tag(i) for i in ids}
        session[CLAIMED_KEY] = [t for t in tags if t in current] + [tag]


def resolve(last_event_id: str, store: StreamStore, attach_grace_s: float) -> str:
    """The stream an id-less request of this session means (module docstring).

    :param last_event_id: the raw ``Last-Event-ID`` header ("" if none).
    :raises NotFound: the session has no stream, or none with that tag.
    :raises BadRequest: ``Last-Event-ID`` is not an event id of ours.
    """
    ids = recent()
    if not ids:
        raise NotFound("This browser has not submitted a prompt yet.")
    if not last_event_id.strip():
        return _first_unclaimed(ids, store, attach_grace_s)
    parsed = event_ids.parse(last_event_id)
    if parsed is None:
        raise BadRequest(
            "Last-Event-ID is not an event id of this stream.", code="invalid_last_event_id"
        )
    if parsed.tag is None:
        return ids[-1]
    for stream_id in reversed(ids):
        if event_ids.tag(stream_id) == parsed.tag:
            return stream_id
    raise NotFound("Last-Event-ID names no stream this browser submitted (or it expired).")


def _first_unclaimed(ids: list[str], store: StreamStore, attach_grace_s: float) -> str:
    try:
        presences = store.presence_many(ids)
    except Exception:  # a store hiccup: fall back to the seed's rule
        log.exception("cannot read reader presence; serving the latest stream")
        return ids[-1]
    claimed = set(_claimed())
    for stream_id in ids:
        presence = presences.get(stream_id)
        if (
            presence
            and not presence.ever_attached
            and presence.idle_s <= attach_grace_s
            and event_ids.tag(stream_id) not in claimed
        ):
            return stream_id
    for stream_id in reversed(ids):
        if stream_id in presences:
            return stream_id
    return ids[-1]
