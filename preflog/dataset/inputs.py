"""What a build reads: the log's files per table, their selected rows, and (``--since``) a previous build's.

A full read keeps the first copy of each id in path order (:func:`preflog.sinks.read.dedupe`), then
selects. An incremental build must give the same rows, so every build keeps, besides its selected rows
(``state/{table}.parquet``), the id of every row it read with the path of the copy that won
(``state/{table}.ids.parquet``). Reading only the new files, an id already read wins where its first
path sorts first: a new copy that sorts before the old one replaces the old row (selected or not),
one that sorts after is dropped, as a full read would. Rows without an id (written before the tables
had ids) are always kept, as a full read keeps them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from preflog.sinks.read import data_files, read_table
from preflog.sinks.storage import Storage

from .hashing import file_size, sha256_file, source_entry
from .select import IDS, ORDER, Selection, arrow_query, selected

__all__ = ["STATE", "BuildError", "Inputs", "previous", "read_inputs"]

#: the folder of a build's selected rows and ids (read by the next ``--since`` build; not in the content hash)
STATE = "state"


class BuildError(Exception):
    """A build that cannot be made (its name is taken, the log is missing, ``--since`` cannot be its base)."""


class Inputs:
    """Per table: the files listed, the selected rows and the winning (id, path) of every id read."""

    def __init__(self) -> None:
        self.files: dict[str, list[str]] = {}
        self.rows: dict[str, pa.Table] = {}
        self.ids: dict[str, pa.Table] = {}
        self.sources: list[dict[str, Any]] = []


def _files(storage: Storage, table: str, log_url: str) -> list[str]:
    try:
        return data_files(storage, table, log_url)
    except FileNotFoundError:
        if table == "pairs":
            raise BuildError(f"no pairs table under {log_url} (is this an audit log root?)") from None
        return []  # no signal logged yet


def _file_ids(storage: Storage, table: str, paths: list[str]) -> pa.Table:
    """(id, path) of every row of ``paths`` with an id, one column read per file."""
    parts = [pa.table({"id": pa.array([], pa.string()), "path": pa.array([], pa.string())})]
    for path in paths:
        ids = pq.read_table(storage.path(path), columns=[IDS[table]], filesystem=storage.fs).column(0)
        parts.append(pa.table({"id": ids.cast(pa.string()), "path": pa.repeat(pa.scalar(path), len(ids))}))
    return pa.concat_tables(parts)


def previous(root: Path, since: str, config: dict[str, Any], log_url: str) -> dict[str, Any]:
    """The manifest of build ``since``, checked to be a base for an incremental build of ``log_url`` with ``config``."""
    from .catalog import manifest  # catalog reads what build writes, and build imports this module

    try:
        m = manifest(root, since)
    except FileNotFoundError as exc:
        raise BuildError(str(exc)) from None
    if not any(f["path"].endswith(".ids.parquet") for f in m["files"]):
        raise BuildError(f"build {since!r} has no read ids ({STATE}/) to start from: build without --since")
    if m["log"] != log_url:
        raise BuildError(f"build {since!r} read the log at {m['log']}, not {log_url}: build without --since")
    ours = json.loads(json.dumps(config))
    changed = sorted(k for k in ours.keys() | m["selection"].keys() if ours.get(k) != m["selection"].get(k))
    if changed:
        raise BuildError(
            f"--since {since}: its selection differs in {', '.join(changed)}; an incremental build keeps the "
            "selection (build without --since to change it)"
        )
    for f in m["files"]:
        if f["path"].startswith(f"{STATE}/") and sha256_file(root / since / f["path"]) != f["sha256"]:
            raise BuildError(f"build {since!r}: {f['path']} is not what its manifest says; run preflog dataset verify")
    return m


def read_inputs(log_url: str, root: Path, selection: Selection, config: dict[str, Any], since: str | None) -> Inputs:
    """Read the log (only the files ``since`` had not read, when given) into the build's inputs."""
    storage = Storage(log_url)
    base = previous(root, since, config, log_url) if since else None
    known = {s["path"]: s for s in base["sources"]} if base else {}
    out = Inputs()
    for table in IDS:
        listed = _files(storage, table, log_url)
        here = set(listed)
        for path, old in known.items():
            if not path.startswith(f"{table}/"):
                continue
            if path not in here or file_size(storage, path) != old.get("size", -1):
                raise BuildError(
                    f"{path}, read by build {since!r}, is gone from the log or changed; a full build would differ "
                    "from an incremental one: build without --since"
                )
        new = [p for p in listed if p not in known]
        out.sources += [known[p] if p in known else source_entry(storage, p) for p in listed]
        out.files[table] = listed
        old_rows = old_ids = None
        if base is not None:
            old_rows = pq.read_table(root / str(since) / STATE / f"{table}.parquet")
            old_ids = pq.read_table(root / str(since) / STATE / f"{table}.ids.parquet")
        out.rows[table], out.ids[table] = _merge(
            read_table(log_url, table, files=new), _file_ids(storage, table, new), old_rows, old_ids, selection, table
        )
    return out


def _merge(
    new_rows: pa.Table, new_ids: pa.Table, old_rows: pa.Table | None, old_ids: pa.Table | None, s: Selection, table: str
) -> tuple[pa.Table, pa.Table]:
    """The selected rows and winning ids of everything read: the new files' and, if any, a previous build's."""
    key = IDS[table]
    ids = new_ids if old_ids is None else pa.concat_tables([old_ids, new_ids.cast(old_ids.schema)])
    winners = arrow_query({"ids": ids}, "SELECT id, min(path) AS path FROM ids WHERE id <> '' GROUP BY id ORDER BY id")
    fresh = selected(new_rows, s, table)
    if old_rows is None:
        return fresh, winners
    won_by_new = arrow_query({"w": winners, "n": new_ids}, "SELECT DISTINCT w.id FROM w JOIN n USING (id, path)")
    query = f"""SELECT * FROM (
                    SELECT * FROM old WHERE coalesce({key}, '') = '' OR {key} NOT IN (SELECT id FROM won)
                    UNION ALL BY NAME
                    SELECT * FROM fresh WHERE coalesce({key}, '') = '' OR {key} IN (SELECT id FROM won)
                ) ORDER BY {ORDER[table]}"""
    merged = arrow_query({"old": old_rows, "fresh": fresh.cast(old_rows.schema), "won": won_by_new}, query)
    return merged, winners

