"""A loopback TCP proxy that can cut SSE connections mid-stream.

Used to drop a reader's connection from the server side (as a restarting
load balancer or a flaky network would), so tests can prove that
``Last-Event-ID`` resumes with nothing lost or repeated.
"""

from __future__ import annotations

import socket
import threading
import time

#: Between forwarding the last bytes before a cut and closing the connection.
CUT_PAUSE_S = 0.2


class CuttingProxy:
    """Forward ``127.0.0.1:<port>`` to an upstream; optionally cut SSE responses.

    :param upstream: ``(host, port)`` of the real server.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut_after = 0
        self._cuts_left = 0
        self._methods: tuple[bytes, ...] = (b"GET ",)
        self._refuse_reconnects = False
        self._drop_bytes = 7
        self._released = threading.Event()
        self.cuts = 0
        #: Event-stream requests refused before :meth:`release` (``refuse_reconnects``).
        self.refused = 0
        self._stopped = False
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(
        self,
        after_events: int,
        times: int = 1,
        *,
        methods: tuple[str, ...] = ("GET",),
        refuse_reconnects: bool = False,
        drop_bytes: int = 7,
    ) -> None:
        """Cut the next ``times`` event-stream responses after ``after_events`` events.

        :param methods: requests that count as event-stream requests (with
            ``Accept: text/event-stream``); ``("GET", "POST")`` for the POST form.
        :param refuse_reconnects: after a cut, close every later event-stream
            request unanswered until :meth:`release`, so a client keeps
            retrying (a network error) and the request that gets through is
            one it composed after :meth:`release` was decided: its cookies
            are those of the requests made meanwhile (no timing involved).
        :param drop_bytes: bytes of the last event withheld at the cut (7:
            the cut falls inside chatstream's ``id:`` line, the event's last;
            1: only the blank line that would end the event is missing).
        """
        with self._lock:
            self._cut_after, self._cuts_left = after_events, times
            self._methods = tuple(f"{m} ".encode() for m in methods)
            self._refuse_reconnects = refuse_reconnects
            self._drop_bytes = drop_bytes
            self._released.clear()

    def release(self) -> None:
        """Stop refusing reconnects."""
        self._released.set()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        self._sockets.update((client, upstream))
        # Per connection: how many events the current response may carry
        # before the cut (0: no cut). Browsers do not pipeline, so once an
        # event-stream GET is forwarded, what comes back is its response.
        state = {"limit": 0, "seen": 0}
        threading.Thread(
            target=self._pump_requests, args=(client, upstream, state), daemon=True
        ).start()
        self._pump_responses(upstream, client, state)

    def _pump_requests(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        try:
            while data := src.recv(65536):
                if data.startswith(self._methods) and b"text/event-stream" in data.lower():
                    if self._refuse_reconnects and self.cuts and not self._released.is_set():
                        with self._lock:
                            self.refused += 1
                        return  # closed unanswered: the client retries
                    with self._lock:
                        if self._cuts_left > 0:
                            self._cuts_left -= 1
                            state["limit"], state["seen"] = self._cut_after, 0
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(src, dst)

    def _pump_responses(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        try:
            while data := src.recv(65536):
                if state["limit"]:
                    before = state["seen"]
                    state["seen"] += data.count(b"event: ")
                    if state["seen"] >= state["limit"]:
                        # Forward the response up to ``drop_bytes`` before the
                        # end of its ``limit``-th event, then drop: the client
                        # must discard the incomplete event and resume after
                        # the last complete one. Events after it in this read
                        # are never forwarded, however fast the server was.
                        dst.sendall(data[: self._cut_at(data, state["limit"] - before)])
                        # Then the connection dies, a moment later, as a real
                        # cut does: data and close arriving together let a
                        # loaded browser drop the data (Chromium did once),
                        # and a client that got no event of a stream cannot
                        # resume it by id. The outcome does not depend on it.
                        time.sleep(CUT_PAUSE_S)
                        self.cuts += 1
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(src, dst)
            for sock in (src, dst):
                sock.close()

    def _cut_at(self, data: bytes, nth: int) -> int:
        """Where to cut ``data``: ``drop_bytes`` before the end of its ``nth`` event."""
        start = -1
        for _ in range(nth):
            start = data.index(b"event: ", start + 1)
        end = data.find(b"\n\n", start)
        end = len(data) if end < 0 else end + 2  # the event ends in a later read
        return max(start + 1, end - self._drop_bytes)

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shutdown(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
