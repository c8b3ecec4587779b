"""How ``preflog up`` reacts to signals: SIGINT, SIGTERM and SIGHUP all stop it the same way.

The first signal raises :class:`Stopping` in the main thread (as Ctrl-C
raises KeyboardInterrupt), so whatever ``up`` was doing unwinds into its
clean stop. Once the stop has begun (:meth:`StopSignals.stopping`), signals
never raise again: a second one only makes :meth:`StopSignals.urgent` true,
so the stop kills what is left instead of waiting, and nothing is orphaned
by an exception in the middle of it. A hang-up (closed terminal) also sends
further output to /dev/null, since writing to a hung-up terminal fails.
"""

from __future__ import annotations

import os
import signal
from types import FrameType, TracebackType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "Stopping"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopping(BaseException):  # like KeyboardInterrupt: not an error, not caught by `except Exception`
    """A stop signal arrived; ``args[0]`` is its name (SIGINT, SIGTERM, SIGHUP)."""


class StopSignals:
    """Context manager installing the stop handlers (main thread only); restores the old ones on exit."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._stopping = False
        self._previous: dict[int, Any] = {}
        self._terminal_fds: list[int] = []

    def __enter__(self) -> StopSignals:
        self._terminal_fds = [fd for fd in (1, 2) if _isatty(fd)]  # after a hang-up isatty() may say no
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if signum == signal.SIGHUP:
            _to_devnull(self._terminal_fds)
        if not self._stopping:
            self._stopping = True
            raise Stopping(name)

    def stopping(self) -> None:
        """From now on signals never raise; call this first thing in the clean stop."""
        self._stopping = True

    def urgent(self) -> bool:
        """True after a second stop signal: kill what is left instead of waiting."""
        return len(self.received) > 1

    @property
    def first(self) -> str | None:
        return self.received[0] if self.received else None


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _to_devnull(fds: list[int]) -> None:
    """Point ``fds`` (the terminal's) at /dev/null: after a hang-up nobody reads them and writes fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in fds:
        try:
            os.dup2(devnull, fd)
        except OSError:
            continue
    os.close(devnull)
