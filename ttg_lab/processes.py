"""Background processes the lab starts and later stops, from this or another process.

A pid in a state file is obeyed only while it is still the process that was started: its
start time and command line (from ``/proc/<pid>/stat`` and ``/proc/<pid>/cmdline``,
recorded at start) must match. Anything else is a stale entry, and nothing is signalled.
The MCP services and the local model server both keep their processes this way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells a process from a later one that got the same pid: when it started
    (clock ticks after boot, field 22 of ``/proc/<pid>/stat``) and its command line."""

    pid: int
    start_ticks: int
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of live process ``pid``; None when there is none (or only a zombie)
        or when this system has no ``/proc`` to tell (then nothing is ever signalled)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] in ("Z", "X"):  # exited, not yet reaped
            return None
        cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])
        return cls(pid, int(fields[19]), cmdline)

    def running(self) -> bool:
        """Whether this very process still runs (not merely its pid)."""
        return ProcessIdentity.of(self.pid) == self

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, data: Any) -> ProcessIdentity:
        """The identity a state file recorded; KeyError, TypeError or ValueError when the
        entry does not say which process it is (such an entry is never obeyed)."""
        return cls(
            int(data["pid"]), int(data["start_ticks"]), tuple(str(a) for a in data["cmdline"])
        )


def identity_after_exec(
    process: subprocess.Popen[bytes], command: tuple[str, ...]
) -> ProcessIdentity | None:
    """The identity of a child just started with ``command``, read once the kernel shows
    that command line (for a moment around the exec it may show none); None if the child
    is gone by then."""
    deadline = time.monotonic() + 5.0
    while process.poll() is None and time.monotonic() < deadline:
        identity = ProcessIdentity.of(process.pid)
        if identity is not None and identity.cmdline == command:
            return identity
        time.sleep(0.005)
    return None


def send_signal(process: ProcessIdentity, signum: int) -> None:
    """Send ``signum`` to ``process``, only while it is still that process."""
    if process.running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def reap(pid: int) -> None:
    """Collect a child that exited, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate(process: ProcessIdentity, wait: float) -> None:
    """End ``process``: SIGTERM, up to ``wait`` seconds for it to exit, then SIGKILL."""
    send_signal(process, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while process.running() and time.monotonic() < deadline:
        reap(process.pid)
        time.sleep(0.05)
    send_signal(process, signal.SIGKILL)
    reap(process.pid)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""What stops a foreground command: Ctrl-C, or ``kill`` from a script or a supervisor."""


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While a foreground command waits on its child: SIGINT and SIGTERM both raise
    KeyboardInterrupt, so the command can stop its child before it ends. SIGINT is set
    even when it was inherited as ignored (a background job of a script starts so, and
    Python then never raises KeyboardInterrupt); the previous handlers come back after.
    Outside the main thread, where handlers cannot be set, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
