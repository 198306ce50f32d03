"""Batch entries of the Redis store become exact per-event frames in a mirror."""

from __future__ import annotations

from chatstream import sse
from chatstream.concurrency import Driver
from chatstream.store.redis.copies import Mirror


def entry(first: int, texts: list[str], final: bool = False):
    frames = [sse.encode_token(t, first + i) for i, t in enumerate(texts)]
    fields = {b"f": b"".join(frames), b"n": str(len(frames)).encode()}
    if final:
        fields[b"t"] = b"1"
    return f"0-{first + len(frames) - 1}".encode(), fields, frames


def test_batches_split_into_events_and_overlaps_are_skipped():
    mirror = Mirror(Driver("threading"))
    id1, f1, frames1 = entry(1, ["a\n\nb", "", "c"])  # a blank line inside data is escaped
    id2, f2, frames2 = entry(4, ["d", "e"], final=True)
    mirror.extend_entries([(id1, f1)])
    assert mirror.frames == frames1
    # A reload raced the blocking read: the first batch comes again, then the next.
    mirror.extend_entries([(id1, f1), (id2, f2)])
    assert mirror.frames == frames1 + frames2 and mirror.finished


def test_a_batch_partly_held_contributes_only_its_new_events():
    mirror = Mirror(Driver("threading"))
    _, _, frames = entry(1, ["a", "b"])
    mirror.extend(frames)
    id_, fields, all_frames = entry(1, ["a", "b", "c", "d"])
    mirror.extend_entries([(id_, fields)])
    assert mirror.frames == all_frames
