"""Where copies of sealed data went: each export of a sealed log records the subjects it holds.

An export opens sealed fields and writes them in the clear (a training set is text), so an erasure must
find its copies. ``preflog export`` of a sealed log writes, next to its output:

* ``<output>.subjects.parquet``: one column ``subject``, the distinct pseudonyms of the rows written;

and appends one JSON line to the registry ``<data dir>/privacy/exports.jsonl``:
``{"path": <absolute output path or URL>, "subjects": <that file>, "at": <ISO time, UTC>, "rows": <n>}``.

:func:`exports_holding` answers an erasure's question: which exports hold any of these subjects. Only
pseudonyms and paths are written here, never a text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["REGISTRY", "SUFFIX", "exports_holding", "location", "read_registry", "record_export", "subjects_path"]

#: the registry of exports, under the data directory
REGISTRY = Path("privacy") / "exports.jsonl"
#: the suffix of an export's subjects file
SUFFIX = ".subjects.parquet"


def location(output: str) -> str:
    """``output`` as the registry names it: a URL as it is, a local path made absolute."""
    return output if "://" in output else os.path.abspath(output)


def subjects_path(output: str) -> str:
    """The subjects file of the export at ``output`` (absolute, or a URL)."""
    return location(output) + SUFFIX


def record_export(
    data_dir: Path | str,
    output: str,
    subjects: Iterable[str],
    rows: int,
    storage_options: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Write the subjects file of the export at ``output`` and append its entry to the registry; the entry.

    ``storage_options`` reach the subjects file when ``output`` is a URL; the registry is a local file.
    """
    sidecar = subjects_path(output)
    table = pa.table({"subject": pa.array(sorted({s for s in subjects if s}), pa.string())})
    options = storage_options if "://" in sidecar else None
    with fsspec.open(sidecar, "wb", **(options or {})) as f:
        pq.write_table(table, f)
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
    entry: dict[str, Any] = {"path": location(output), "subjects": sidecar, "at": when, "rows": int(rows)}
    registry = Path(data_dir) / REGISTRY
    registry.parent.mkdir(parents=True, exist_ok=True)
    with open(registry, "a", encoding="utf-8") as f:  # one write of one line: appends do not interleave
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return entry


def read_registry(data_dir: Path | str) -> list[dict[str, Any]]:
    """Every registry entry, in the order written (empty when no export was recorded).

    Raises:
        ValueError: a line is not an entry (named by its number).
    """
    registry = Path(data_dir) / REGISTRY
    if not registry.is_file():
        return []
    entries = []
    for number, line in enumerate(registry.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or "subjects" not in entry:
            raise ValueError(f"{registry}: line {number} is not an export entry (path, subjects, at, rows)")
        entries.append(entry)
    return entries


def exports_holding(
    data_dir: Path | str, subjects: Iterable[str], storage_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The registry entries of exports that hold any of ``subjects``, oldest first.

    Each is the registry's entry (``path``, ``subjects``, ``at``, ``rows``) plus ``matched``: the given
    subjects its subjects file holds, sorted. Only the latest entry of each path counts (an export written
    again to the same path replaced the file and its subjects file). An export whose subjects file cannot be
    read while its output still exists is returned with ``matched`` None (it may hold them: look at it); one
    whose output and subjects file are both gone is not (there is no copy left). ``storage_options`` reach
    outputs at URLs.
    """
    wanted = sorted({s for s in subjects if s})
    if not wanted:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for entry in read_registry(data_dir):
        latest.pop(entry["path"], None)  # re-insert: the order is that of the latest entries
        latest[entry["path"]] = entry
    value_set = pa.array(wanted, pa.string())
    out = []
    for entry in latest.values():
        sidecar = str(entry["subjects"])
        try:
            # Read in this thread, without pre-buffering: pre-buffered reads of a Python file are Arrow I/O
            # tasks holding Python buffers, which an Arrow thread may release after the command ended, while
            # the interpreter shuts down; that aborts the process ("terminate called without an active
            # exception", exit 134) after `preflog erase` had done its work
            options = _options(sidecar, storage_options)
            with fsspec.open(sidecar, "rb", **options) as f, pq.ParquetFile(f, pre_buffer=False) as parquet:
                column = parquet.read(columns=["subject"], use_threads=False).column("subject")
        except FileNotFoundError:
            if not _exists(entry["path"], storage_options):
                continue
            out.append({**entry, "matched": None})
            continue
        found = pc.unique(column.filter(pc.is_in(column, value_set=value_set))).to_pylist()
        if found:
            out.append({**entry, "matched": sorted(found)})
    return out


def _options(path: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    return dict(storage_options or {}) if "://" in path else {}


def _exists(path: str, storage_options: dict[str, Any] | None) -> bool:
    fs, root = fsspec.core.url_to_fs(path, **_options(path, storage_options))
    return bool(fs.exists(root))
