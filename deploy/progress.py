"""What ``preflog up`` reports while it runs: records through the topics, and Parquet files written."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FlowProgress", "QuietLines", "count_audit_files"]


def count_audit_files(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Parquet data files of the live audit log at ``url`` (manifests, replays and temp files left out)."""
    from preflog.sinks.storage import Storage

    try:
        storage = Storage(url, storage_options)
        return sum(
            1
            for path in storage.list()
            if path.endswith(".parquet") and not any(part[:1] in ("_", ".") for part in path.split("/"))
        )
    except Exception:  # progress must never stop the stack: an unreadable log counts as empty
        return 0


@dataclass
class FlowProgress:
    """One progress line from the flow monitor's counts and the audit log's file count.

    ``earlier_files`` are the files already in the audit log when ``up`` started (earlier runs).
    """

    audit_url: str
    storage_options: dict[str, Any]
    earlier_files: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    def files_written(self) -> int:
        """Files this run's sink has written so far."""
        return max(0, count_audit_files(self.audit_url, self.storage_options) - self.earlier_files)

    def clock(self) -> str:
        """Time since ``up`` started, as m:ss."""
        elapsed = int(time.monotonic() - self.started)
        return f"{elapsed // 60:d}:{elapsed % 60:02d}"

    def status(self, counts: Mapping[str, int]) -> str:
        """The counts part of the line: what changes only when records flow."""
        inference, feedback = counts.get("inference", 0), counts.get("feedback", 0)
        return (
            f"events in {inference + feedback} "
            f"({inference} inference, {feedback} feedback)  pairs out {counts.get('pairs', 0)}  "
            f"unpaired {counts.get('unpaired', 0)}  unmatched {counts.get('unmatched', 0)}  "
            f"dead letters {counts.get('dead_letter', 0)}  files written {self.files_written()}"
        )

    def line(self, counts: Mapping[str, int]) -> str:
        return f"{self.clock()}  {self.status(counts)}"


@dataclass
class QuietLines:
    """Which plain progress lines (a log file, a pipe) to write: a status that changed, else one per ``idle_s``.

    An idle stack then adds a line every few minutes, not every few seconds.
    """

    idle_s: float = 300.0
    last: str | None = None
    written_at: float = 0.0

    def due(self, status: str, now: float) -> bool:
        """Whether to write ``status`` at ``now`` (monotonic seconds); if so, it is taken as written."""
        if status == self.last and now - self.written_at < self.idle_s:
            return False
        self.last, self.written_at = status, now
        return True
