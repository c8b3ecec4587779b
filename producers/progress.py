"""Resumable backfills: an append-only file of the events the broker confirmed.

One line per event id (``i:<request_id>`` or ``f:<feedback_id>``), appended
when Kafka acknowledges the record. A resumed run skips every id in the file,
so an interrupted backfill (Ctrl-C, SIGTERM: in-flight records are flushed
first) sends each event exactly once. After a kill -9 the records that were in
flight but unconfirmed are sent again; the processor ignores such duplicates.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["Progress", "event_id"]


def event_id(event_type: str, data: dict[str, Any]) -> str | None:
    """The idempotency key of an event, or None when it has none."""
    key = data.get("feedback_id") if event_type == "feedback" else data.get("request_id")
    return f"{event_type[0]}:{key}" if key else None


class Progress:
    """The ids already confirmed by earlier runs, and an appender for this one."""

    def __init__(self, path: Path, restart: bool = False) -> None:
        self.path = path
        if restart and path.exists():
            path.unlink()
        self.done: set[str] = set(path.read_text().split()) if path.exists() else set()
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def confirmed(self, eid: str) -> None:
        """Record that ``eid`` reached the broker (called from the delivery callback)."""
        with self._lock:
            self._file.write(eid + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
