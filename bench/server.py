"""Start, probe and stop the server under test (and its private Redis).

Each server runs in a session of its own (``start_new_session``) so that the
whole group — gunicorn's master and workers — is stopped together, by the
group id of the process this module started.  Output goes to a log file whose
tail is shown when the server fails to come up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench import procstat
from bench.targets import NICE
from bench.targets import pinned


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def boost_autogroup(pid: int) -> None:
    """Give the session led by ``pid`` the same priority boost as its ``nice``.

    With ``kernel.sched_autogroup_enabled`` (the default), CPU is first shared
    between sessions and a process's nice value only counts inside its own, so
    ``nice`` alone does not help a new session against other work; the
    session's own nice value (``/proc/PID/autogroup``) does.  Needs root.
    """
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(NICE)
    except OSError:
        pass


class ServerError(RuntimeError):
    """The server did not start or answer in time."""


class Server:
    """A child server process pinned with ``taskset``.

    :param argv: the command line.
    :param cpus: ``taskset -c`` core list, or ``""`` for no pinning (see
        :func:`bench.targets.pinned`).
    :param env: extra environment variables.
    :param log: file receiving stdout and stderr.
    :param cwd: working directory.
    """

    def __init__(
        self, argv: list[str], cpus: str, env: dict[str, str], log: Path, cwd: Path
    ) -> None:
        cmd = pinned(cpus) + argv
        self.log = log
        self._logf = log.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        boost_autogroup(self.proc.pid)

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        """Wait until ``port`` accepts connections.

        :raises ServerError: if the process exits or the time runs out.
        """
        stop = time.monotonic() + timeout
        while time.monotonic() < stop:
            if self.proc.poll() is not None:
                raise ServerError(f"exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise ServerError(f"no answer on port {port} after {timeout:.0f} s:\n{self.tail()}")

    def pids(self) -> list[int]:
        """This server's live process tree."""
        return procstat.tree([self.proc.pid])

    def tail(self, lines: int = 15) -> str:
        """The last lines of the log."""
        self._logf.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Quick shutdown (SIGINT, then SIGKILL after 5 s) of this server's group."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        # Workers may outlive the master by a moment; the group id is still ours.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._logf.close()


def start_redis(binary: str, port: int, cpus: str, log: Path, cwd: Path) -> Server:
    """A throwaway redis-server on loopback, without persistence."""
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--maxclients", "20000",
        "--dir", str(cwd),
    ]  # fmt: skip
    server = Server(argv, cpus, {}, log, cwd)
    server.wait_port(port, 10)
    return server
