"""Where a ``preflog up`` stack runs: ``<data-dir>/stack.json``, and the broker incarnations it has had.

``preflog up`` writes ``stack.json`` when its broker is up (bootstrap address,
pids, start time, broker incarnation) and removes it when it stops cleanly.
Other commands read it to find the stack without an exported address; a
file whose processes are gone (``up`` was killed) is stale and ignored.

Every broker start is a new incarnation (a uuid): the embedded broker keeps
its log in memory, so each ``up`` starts with empty topics. Each one is
appended to ``<data-dir>/incarnations.log`` (JSON lines), so the audit log's
files can be told apart by the run that wrote them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .lifeline import alive

__all__ = ["StackRecord", "find_running", "incarnations", "read_record", "record_incarnation", "remove_record"]

STACK_FILE = "stack.json"
INCARNATIONS_FILE = "incarnations.log"


@dataclass
class StackRecord:
    """One running ``preflog up``."""

    bootstrap_servers: str
    incarnation: str
    started_at: str
    up_pid: int
    broker_pid: int
    services: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    data_dir: str = ""

    def pids(self) -> dict[str, int]:
        """Every process of the stack by role: up, broker, then its services."""
        return {"up": self.up_pid, "broker": self.broker_pid, **self.services}

    def alive(self) -> bool:
        """Whether ``up`` and its broker both still run."""
        return alive(self.up_pid) and alive(self.broker_pid)

    def describe(self) -> str:
        return f"{self.bootstrap_servers} (preflog up, pid {self.up_pid}, started {self.started_at})"

    def write(self, data_dir: Path) -> Path:
        """Write (or replace) ``<data_dir>/stack.json`` atomically."""
        path = data_dir / STACK_FILE
        tmp = path.with_name(f".{STACK_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def read_record(data_dir: Path) -> StackRecord | None:
    """The stack file in ``data_dir``, alive or not; None when missing or unreadable."""
    try:
        raw: dict[str, Any] = json.loads((data_dir / STACK_FILE).read_text(encoding="utf-8"))
        return StackRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def find_running(data_dir: Path) -> StackRecord | None:
    """The ``preflog up`` stack running from ``data_dir``, or None (no file, or a stale one)."""
    record = read_record(data_dir)
    return record if record is not None and record.alive() else None


def remove_record(data_dir: Path, incarnation: str) -> None:
    """Remove the stack file if it still describes ``incarnation`` (never another run's)."""
    record = read_record(data_dir)
    if record is not None and record.incarnation == incarnation:
        (data_dir / STACK_FILE).unlink(missing_ok=True)


def record_incarnation(data_dir: Path, record: StackRecord) -> None:
    """Append this broker start to ``<data_dir>/incarnations.log``."""
    line = {"incarnation": record.incarnation, "started_at": record.started_at, "bootstrap": record.bootstrap_servers}
    with (data_dir / INCARNATIONS_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def incarnations(data_dir: Path) -> list[dict[str, Any]]:
    """Every broker incarnation recorded in ``data_dir``, oldest first."""
    try:
        lines = (data_dir / INCARNATIONS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
