"""Incremental HTTP/1.1 response parser (status line, headers, body framing).

It handles the three body framings of RFC 9112 section 6: ``Transfer-Encoding:
chunked`` (section 7.1, chunk extensions and trailers skipped), ``Content-Length``,
and read-until-close.  Body bytes are passed on once per :meth:`feed` call, so a
read holding many chunks costs one downstream call.
"""

from __future__ import annotations

from collections.abc import Callable

_HEAD, _SIZE, _CHUNK, _TRAILER, _LENGTH, _CLOSE, _DONE = range(7)


class ProtocolError(Exception):
    """The server sent something that is not HTTP/1.1 as we expect it."""


class ResponseParser:
    """Parse one response; call :meth:`reset` to parse the next on the same connection.

    :param on_body: called with each run of decoded body bytes.
    """

    __slots__ = (
        "_buf",
        "_left",
        "_on_body",
        "_state",
        "headers",
        "keep_alive",
        "status",
    )

    def __init__(self, on_body: Callable[[bytes], None]) -> None:
        self._on_body = on_body
        self.reset()

    def reset(self, on_body: Callable[[bytes], None] | None = None) -> None:
        """Get ready for the next response, optionally with a new body sink."""
        if on_body is not None:
            self._on_body = on_body
        self._buf = b""
        self._state = _HEAD
        self._left = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True

    @property
    def head_done(self) -> bool:
        """Whether the status line and headers have been read."""
        return self._state != _HEAD

    @property
    def done(self) -> bool:
        """Whether the whole response (body included) has been read."""
        return self._state == _DONE

    def feed(self, data: bytes) -> None:
        """Consume bytes read from the socket.

        :raises ProtocolError: on a malformed status line or chunk size.
        """
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        while buf:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                self._parse_head(buf[:end])
                buf = buf[end + 4 :]
            elif state == _SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                try:
                    size = int(buf[:end].split(b";", 1)[0], 16)
                except ValueError as exc:
                    raise ProtocolError(f"bad chunk size {buf[:end]!r}") from exc
                buf = buf[end + 2 :]
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._left, self._state = size, _CHUNK
            elif state == _CHUNK:
                left = self._left
                if len(buf) < left + 2:
                    if len(buf) <= left:
                        out.append(buf)
                        self._left = left - len(buf)
                        buf = b""
                    else:  # all data but not the whole CRLF yet
                        out.append(buf[:left])
                        self._left = 0
                        buf = buf[left:]
                    break
                out.append(buf[:left])
                buf = buf[left + 2 :]
                self._state = _SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                buf = buf[end + 2 :]
                if end == 0:
                    self._state = _DONE
            elif state == _LENGTH:
                take = buf[: self._left]
                out.append(take)
                self._left -= len(take)
                buf = buf[len(take) :]
                if self._left == 0:
                    self._state = _DONE
            elif state == _CLOSE:
                out.append(buf)
                buf = b""
            else:  # _DONE: bytes after the response; keep them for the next one
                break
        self._buf = buf
        if out:
            self._on_body(out[0] if len(out) == 1 else b"".join(out))

    def eof(self) -> None:
        """The peer closed the connection: a read-until-close body is complete."""
        if self._state == _CLOSE:
            self._state = _DONE

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        conn = self.headers.get("connection", "").lower()
        self.keep_alive = parts[0] == "HTTP/1.1" and "close" not in conn
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._state = _SIZE
        elif "content-length" in self.headers:
            self._left = int(self.headers["content-length"])
            self._state = _LENGTH if self._left else _DONE
        elif self.status in (204, 304) or 100 <= self.status < 200:
            self._state = _DONE
        else:
            self._state = _CLOSE
            self.keep_alive = False
