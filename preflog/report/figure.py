"""One figure of the report: its data (an Arrow table, written beside the HTML), headline figures and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["Figure"]


@dataclass
class Figure:
    """A titled result: ``table`` is what the chart draws and what ``figures/{name}.parquet`` holds.

    ``summary`` holds the headline numbers (JSON-ready), ``notes`` what a reader must know (a sample too
    small to tell, a flagged trend), ``flags`` the notes that are warnings.
    """

    name: str
    title: str
    table: pa.Table
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    chart: str = ""  # an inline SVG, drawn by preflog.report.charts

    @property
    def empty(self) -> bool:
        """Nothing to draw."""
        return self.table.num_rows == 0
