"""The JSON rows every benchmark writes with ``--json PATH`` (read by ``benchmarks/run_all.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

__all__ = ["Row", "write_rows"]


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
