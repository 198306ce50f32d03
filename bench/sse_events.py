"""Incremental ``text/event-stream`` decoder for the load generator.

It follows the WHATWG HTML "Interpreting an event stream" algorithm
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
lines end in CRLF, LF or CR; a blank line dispatches the event; ``:`` starts a
comment; a field without a colon has an empty value; one leading space of the
value is dropped; an event with no ``data`` line is not dispatched.

It is written for low CPU per event rather than for elegance: input is kept as
bytes, whole events are cut out with one ``split(b"\\n\\n")`` per read, and data
is handed over as bytes (``json.loads`` accepts bytes).  A CR at the very end of
a read is held back, because the next read may start with the LF of a CRLF.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``on_event(event_type, data)``; the type defaults to ``b"message"``.
EventSink = Callable[[bytes, bytes], None]


class SSEDecoder:
    """Feed raw body bytes in any fragmentation; events come out in order.

    :param on_event: called once per dispatched event with its type and data.
    """

    __slots__ = ("_buf", "_on_event", "_started", "comments", "last_event_id", "retry")

    def __init__(self, on_event: EventSink) -> None:
        self._on_event = on_event
        self._buf = b""
        self._started = False
        self.last_event_id = b""
        self.retry: int | None = None
        self.comments = 0

    def feed(self, data: bytes) -> None:
        """Decode ``data`` and dispatch every event it completes.

        :param data: the next bytes of the body, cut anywhere.
        """
        buf = self._buf + data if self._buf else data
        if not self._started and buf:
            # A UTF-8 BOM may open the stream; it is not part of the first field.
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
            elif len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return
            self._started = True
        tail = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop() + tail
        for block in blocks:
            self._block(block)

    def _block(self, block: bytes) -> None:
        """Interpret the lines of one blank-line-terminated block."""
        event = b"message"
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line:
                # Only leading blank lines get here (extra blank lines between events).
                if data:
                    self._on_event(event, b"\n".join(data))
                event, data = b"message", []
                continue
            name, _, value = line.partition(b":")
            if not name:
                self.comments += 1
                continue
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value
            elif name == b"id":
                if b"\x00" not in value:
                    self.last_event_id = value
            elif name == b"retry" and value.isdigit():
                self.retry = int(value)
        if data:
            self._on_event(event, b"\n".join(data))
