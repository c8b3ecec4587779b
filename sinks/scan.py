"""Reading the audit log without holding it: DuckDB views and Arrow batches over the files preflog wrote.

:func:`preflog.read_pairs` materialises a whole table as one Arrow table: right for a notebook over a
few hundred thousand pairs, wrong for a log that grows without end. Here a table is read in a
streaming fashion with memory bounded by a limit, spilling to disk where a query needs more:

* :func:`log_view` makes a DuckDB view of one table over an explicit list of its files (DuckDB's own
  Parquet reader, partition pruning, projection pushdown);
* :func:`iter_batches` yields Arrow record batches in path order, rows in file order (exports, checks),
  with ``read_pairs``' filters applied as it applies them (:mod:`preflog.sinks.filtered`).

Both read the same rows :func:`preflog.sinks.read.read_table` does: the files preflog named, in path
order, the first copy of each non-empty id kept (:func:`repeated_copies` finds the later copies from
the id column alone, so deduplication costs one narrow scan, never the rows).

    con = connect("512MB")
    log_view(con, "file:///data/audit", "pairs", "pairs")
    con.sql("SELECT model.name, count(*) FROM pairs GROUP BY ALL").show()
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from preflog.schemas.tables import TABLES

from .read import _schema, data_files
from .storage import Storage

__all__ = [
    "DEFAULT_MEMORY",
    "connect",
    "iter_batches",
    "located",
    "log_view",
    "memory_limit",
    "parquet_source",
    "repeated_copies",
]

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _ram() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


#: DuckDB's memory limit when none is given: an eighth of the machine's memory, at most 1 GiB
DEFAULT_MEMORY = min(_ram() // 8, 2**30)


def memory_limit(text: str | int | None) -> int:
    """Bytes from ``"512MB"``, ``"2GiB"``, ``"10%"`` (of this machine's memory) or a number of bytes; None: the default.

    Raises:
        ValueError: not a size, or below 128 MB (DuckDB needs a little to work at all with rows of long texts).
    """
    if text is None:
        return DEFAULT_MEMORY
    if isinstance(text, int):
        size = text
    else:
        found = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*|%)\s*", text)
        if not found or (found.group(2).lower() not in _UNITS and found.group(2) != "%"):
            raise ValueError(f"memory limit {text!r}: write a size such as 512MB, 2GB, 4GiB or 10% (of RAM)")
        number, unit = float(found.group(1)), found.group(2).lower()
        size = int(number * _ram() / 100) if unit == "%" else int(number * _UNITS[unit])
    if size < 128 * 10**6:
        raise ValueError(f"memory limit {text!r}: at least 128MB (DuckDB spills to disk beyond it, but needs that)")
    return size


def connect(limit: str | int | None = None, spill: str | None = None, database: str = ":memory:") -> Any:
    """A DuckDB connection in UTC whose memory is bounded by ``limit`` (:func:`memory_limit`), spilling to ``spill``.

    ``spill`` defaults to a folder under the system's temporary directory; DuckDB removes what it wrote there.
    """
    import duckdb

    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")  # dates and times read the same on every machine
    con.execute(f"SET memory_limit = '{memory_limit(limit)}B'")
    con.execute(f"SET temp_directory = '{_quote(spill or os.path.join(tempfile.gettempdir(), 'preflog-spill'))}'")
    con.execute("SET enable_progress_bar = false")  # a command's own output must not be drawn over
    return con


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{_quote(p)}'" for p in paths) + "]"


def located(con: Any, storage: Storage, relative: Sequence[str]) -> list[str]:
    """Paths DuckDB can open for ``relative`` files of ``storage`` (a remote filesystem is registered with it)."""
    if storage.local:
        return [storage.path(p) for p in relative]
    protocol = storage.fs.protocol if isinstance(storage.fs.protocol, str) else storage.fs.protocol[0]
    if not con.filesystem_is_registered(protocol):
        con.register_filesystem(storage.fs)
    return [f"{protocol}://{storage.path(p)}" for p in relative]


def parquet_source(paths: list[str], extra: str = "") -> str:
    """DuckDB's reader of the log's Parquet ``paths`` (as :func:`located` gives them), ``dt`` as text."""
    options = "hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}, union_by_name = true"
    return f"read_parquet({_sql_list(paths)}, {options}{extra})"


def repeated_copies(
    con: Any, storage: Storage, table: str, files: Sequence[str], where: str = "true", params: list[Any] | None = None
) -> dict[str, list[int]]:
    """The rows to drop from ``files`` (relative paths, path order): every copy of an id after its first.

    Only rows passing the condition ``where`` (with ``params``) count, as ``read_pairs`` filters before it
    keeps the first copy. Returns ``{relative path: [row numbers in that file]}``; rows without an id are always
    kept. Reads the id (and the filtered) columns only; the grouping spills to disk beyond the memory limit.
    """
    column = TABLES[table].id_column
    if not files or column is None:
        return {}
    paths = located(con, storage, files)
    order = pa.table({"filename": paths, "relative": list(files), "idx": list(range(len(files)))})
    con.register("__preflog_files", order)
    try:
        query = f"""
            WITH ids AS (
                SELECT s.id, f.relative, f.idx, s.file_row_number
                FROM (SELECT {column} AS id, filename, file_row_number
                      FROM {parquet_source(paths, ", filename = true, file_row_number = true")}
                      WHERE coalesce({column}, '') <> '' AND ({where})) s
                JOIN __preflog_files f USING (filename)
            )
            SELECT relative, file_row_number FROM ids
            WHERE id IN (SELECT id FROM ids GROUP BY id HAVING count(*) > 1)
            QUALIFY row_number() OVER (PARTITION BY id ORDER BY idx, file_row_number) > 1
        """
        found: dict[str, list[int]] = {}
        for relative, row in con.execute(query, params or []).fetchall():
            found.setdefault(relative, []).append(int(row))
    finally:
        con.unregister("__preflog_files")
    return {path: sorted(rows) for path, rows in found.items()}


def _newest(con: Any, name: str, table: str, rid: bool, base: str) -> None:
    """Make view ``name`` have the newest schema's columns and types when its files are of older versions.

    Files written before a schema version added a field (a column, or a field of a nested struct) lack it;
    unioned by name with an empty table of the newest schema, their rows read with it null, as
    :func:`preflog.sinks.read.read_table` reads them. A log of the newest version is left as it is.
    """
    empty = _schema(table).empty_table()
    if rid:
        empty = empty.append_column(pa.field("__rid", pa.int64()), pa.array([], pa.int64()))
    con.register(f"{name}__newest", empty)
    try:
        have = con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
        want = con.execute(f"DESCRIBE SELECT * FROM {name}__newest").fetchall()
        if {(r[0], r[1]) for r in want} <= {(r[0], r[1]) for r in have}:
            return
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name}__schema AS SELECT * FROM {name}__newest")
    finally:
        con.unregister(f"{name}__newest")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name}__older AS {base}")
    union = f"SELECT * FROM {name}__schema UNION ALL BY NAME SELECT * FROM {name}__older"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {union}")


def log_view(
    con: Any,
    name: str,
    url: str,
    table: str = "pairs",
    files: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    rid: int | None = None,
    keyring: Any = None,
) -> list[str]:
    """Create the DuckDB view ``name`` of ``table`` of the audit log at ``url``; the files it reads (path order).

    With ``keyring`` (a :class:`preflog.privacy.keyring.Keyring`) the view's personal fields are opened and
    it has two more columns, ``subject`` and ``erased`` (:func:`preflog.privacy.keyring.opened_view`).

    ``files`` (relative to the log root, as :func:`preflog.sinks.read.data_files` lists them) pins the view to
    those files; by default every file preflog wrote for the table. The view has the table's columns and ``dt``;
    with ``rid``, also ``__rid``, a row's identity: ``(rid + i) << 32 | row`` for row ``row`` of the i-th file
    (a query can join on it to read a row's texts again without holding them).

    Raises:
        FileNotFoundError: the log has no such table (and ``files`` was not given).
    """
    if keyring is not None:
        from preflog.privacy.views import opened_view

        listed = log_view(con, f"{name}__sealed", url, table, files, storage_options, rid)
        opened_view(con, name, f"SELECT * FROM {name}__sealed", table, _schema(table), keyring)
        return listed
    storage = Storage(url, storage_options)
    listed = list(files) if files is not None else data_files(storage, table, url)
    if not listed:
        con.register(f"{name}__empty", _schema(table).empty_table())
        extra = ", NULL::BIGINT AS __rid" if rid is not None else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT *{extra} FROM {name}__empty")
        return listed
    drop = repeated_copies(con, storage, table, listed)
    paths = located(con, storage, listed)
    where = dict(zip(listed, paths, strict=True))
    copies = pa.table({
        "filename": pa.array([where[p] for p, rs in drop.items() for _ in rs], pa.string()),
        "file_row_number": pa.array([r for rs in drop.values() for r in rs], pa.int64()),
    })  # fmt: skip
    con.register(f"{name}__dropped", copies)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}__copies AS SELECT * FROM {name}__dropped")
    con.unregister(f"{name}__dropped")
    rows = copies.num_rows
    source = parquet_source(paths, ", filename = true, file_row_number = true")
    if rid is not None:
        con.register(f"{name}__order", pa.table({"filename": paths, "__idx": list(range(rid, rid + len(paths)))}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name}__files AS SELECT * FROM {name}__order")
        con.unregister(f"{name}__order")
        rid_of = "(f.__idx << 32) | s.file_row_number"
        source = f"(SELECT s.*, {rid_of} AS __rid FROM {source} s JOIN {name}__files f USING (filename))"
    base = f"""SELECT * EXCLUDE (filename, file_row_number) FROM {source}
            {"ANTI JOIN " + name + "__copies USING (filename, file_row_number)" if rows else ""}"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {base}")
    _newest(con, name, table, rid is not None, base)
    return listed


def iter_batches(
    url: str,
    table: str = "pairs",
    filters: Any = None,
    columns: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    files: Sequence[str] | None = None,
    batch_rows: int = 4096,
    limit: str | int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows :func:`preflog.sinks.read.read_pairs` gives, as Arrow batches in the same order, never all at once.

    ``filters`` is a :class:`preflog.sinks.filtered.Filters` (dates, models, sources), applied as ``read_pairs``
    applies them: before the first copy of each id is chosen. Memory: one batch, the page being read, and the
    positions of the repeated copies.
    """
    from .filtered import iter_filtered

    for batch in iter_filtered(url, table, filters, storage_options, files, batch_rows, limit):
        yield batch.select(list(columns)) if columns else batch
