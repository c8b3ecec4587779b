"""The JSON rows every benchmark writes with ``--json PATH`` (read by ``benchmarks/run_all.py``), and a timed child."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

__all__ = ["Row", "peak_rss_kb", "timed_child", "write_rows"]


class Row(TypedDict):
    """One figure of a benchmark: ``ratio`` is ``figure`` over the figure of the ``baseline`` row of its group."""

    group: str
    what: str
    figure: float
    unit: str
    baseline: str | None
    ratio: float | None
    target: str | None


def write_rows(path: str | Path, rows: Iterable[Row]) -> None:
    """Write ``rows`` to ``path`` as one JSON list."""
    Path(path).write_text(json.dumps(list(rows), indent=2) + "\n")


def peak_rss_kb() -> int:
    """This process's peak resident memory in kB, since it started its program.

    Linux's ``VmHWM``, not ``ru_maxrss``: a child started by ``subprocess`` inherits as its ``ru_maxrss`` the
    parent's resident size at the fork (a child of a 900 MB parent reports at least 900 MB whatever it used).
    ``ru_maxrss`` where there is no ``/proc``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def timed_child(code: str, *args: str) -> tuple[int, float, float]:
    """Run ``code`` (a Python script) in a child process; the count, seconds and peak RSS in MB its last line gives.

    The script prints ``count seconds peak_kb`` last, the peak from :func:`peak_rss_kb` (``ru_maxrss`` would
    count this process's size too): a child of its own gives the peak memory of one run.
    """
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
    n, took, rss_kb = out.strip().splitlines()[-1].split()
    return int(n), float(took), int(rss_kb) / 1024
