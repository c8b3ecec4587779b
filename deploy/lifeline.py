"""Child processes that never outlive their parent.

Two mechanisms, because either alone leaves a gap:

* the kernel's parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), set in
  the child, fires even when the parent is killed with ``kill -9``. It fires
  when the *thread* that started the child ends, so start children from a
  thread that lives as long as they should (the main thread);
* a watchdog thread in a Python child (:func:`watch_parent`) that notices the
  parent pid change, stops the child, and exits it hard if a clean stop takes
  longer than a grace period (a worker whose broker died with the parent can
  otherwise wait a long time on its goodbye).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["alive", "parent_death_preexec", "set_parent_death_signal", "watch_parent"]

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once at import: a preexec_fn runs between fork and exec and should do no more than call it.
_PRCTL = _load_prctl()


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent ends; False where unsupported."""
    return _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def parent_death_preexec(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that arms the parent-death signal (None off Linux).

    The child exits at once if the parent is already gone by the time the signal is armed.
    """
    if _PRCTL is None:
        return None
    parent = os.getpid()
    prctl = _PRCTL

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def watch_parent(parent: int, grace: float = 10.0, interval: float = 0.5) -> threading.Thread:
    """In a child: stop (SIGTERM to itself) when ``parent`` ends; exit hard ``grace`` seconds later.

    Arms the parent-death signal where the kernel has one, so the stop is
    immediate; the thread covers the rest (other systems, and a parent that
    died before the signal was armed).
    """
    armed = set_parent_death_signal(signal.SIGTERM)
    orphaned = os.getppid() != parent

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        if orphaned or not armed:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(70)

    thread = threading.Thread(target=run, name="preflog-parent-watch", daemon=True)
    thread.start()
    return thread


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie counts as ended)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
