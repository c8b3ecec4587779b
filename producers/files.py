"""Events as JSON lines: reading them for ``preflog produce``, writing them for ``preflog generate --out``.

One event per line. ``event_type`` ("inference" or "feedback") says which;
without it a line with ``feedback_id`` is feedback and any other line an
inference. Event times are ISO-8601 with a UTC offset or epoch milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

__all__ = ["Line", "count_events", "count_lines", "dump_event", "json_default", "read_lines", "read_parquet"]


@dataclass(frozen=True)
class Line:
    """One line of an events file: its event, or why it could not be read."""

    number: int
    event_type: str
    data: dict[str, Any] | None
    error: str | None = None


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dump_event(event_type: str, record: dict[str, Any], out: IO[str]) -> None:
    """Write one event as a JSON line."""
    out.write(json.dumps({"event_type": event_type, **record}, default=json_default, ensure_ascii=False) + "\n")


def _classify(data: dict[str, Any]) -> str:
    declared = data.get("event_type")
    if declared in ("inference", "feedback"):
        return str(declared)
    return "feedback" if "feedback_id" in data else "inference"


def read_lines(lines: Iterable[str]) -> Iterator[Line]:
    """Parse JSON lines; blank lines are skipped, bad ones are reported, never raised."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Line(number, "unknown", None, f"not JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(data, dict):
            yield Line(number, "unknown", None, f"expected a JSON object, got {type(data).__name__}")
            continue
        declared = data.get("event_type")
        if declared is not None and declared not in ("inference", "feedback"):
            yield Line(number, "unknown", None, f"event_type: {declared!r} is not inference or feedback")
            continue
        yield Line(number, _classify(data), data)


def _maps(data: dict[str, Any]) -> dict[str, Any]:
    """Parquet map columns read back as lists of pairs; the contract wants objects."""
    for key in ("metadata",):
        if isinstance(data.get(key), list):
            data[key] = dict(data[key])
    sampling = data.get("sampling")
    if isinstance(sampling, dict) and isinstance(sampling.get("extra"), list):
        sampling["extra"] = dict(sampling["extra"])
    return data


def read_parquet(path: Path, batch_rows: int = 10_000) -> Iterator[Line]:
    """Events from a Parquet file (one row each, same fields as the JSON lines; timestamps as timestamps)."""
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            number += 1
            data = _maps({k: v for k, v in row.items() if v is not None or k == "event_type"})
            declared = data.get("event_type")
            if declared is not None and declared not in ("inference", "feedback"):
                yield Line(number, "unknown", None, f"event_type: {declared!r} is not inference or feedback")
                continue
            yield Line(number, _classify(data), data)


def count_events(path: Path) -> int:
    """Number of events in a JSON-lines or Parquet file (for progress bars)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return count_lines(path)


def count_lines(path: Path) -> int:
    """Number of lines in ``path`` (for progress bars)."""
    with path.open("rb") as f:
        return sum(1 for _ in f)
