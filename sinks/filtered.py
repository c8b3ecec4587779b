"""A table of the log read with filters, batch by batch: exactly the rows :func:`preflog.read_pairs` gives.

``read_pairs`` filters first (dates, model names, source types), then keeps the first copy of each id among
the rows that passed: a copy outside the filter does not hide a later one inside it.
:func:`preflog.sinks.scan.iter_batches` drops repeated copies before it filters, so with a filter it can give
fewer rows. Here the repeated copies are found among the filtered rows (a narrow DuckDB scan of the id and
the filtered columns, spilling beyond its memory limit), then the files are read batch by batch in path
order. Memory: one batch, the row group being read, and the positions of the repeated copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .read import PARTITIONING, _filters, _schema, data_files
from .scan import connect, located, parquet_source, repeated_copies
from .storage import Storage

__all__ = ["Filters", "Values", "filter_values", "filtered_copies", "iter_filtered"]


@dataclass(frozen=True)
class Filters:
    """``read_pairs``' filters: dates (inclusive, YYYY-MM-DD), model names, source types (any case)."""

    start: str | date | None = None
    end: str | date | None = None
    models: Sequence[str] | None = None
    sources: Sequence[str] | None = None

    def expression(self) -> ds.Expression | None:
        """The filter as ``read_pairs`` gives it to pyarrow (None: every row)."""
        return _filters(self.start, self.end, self.models, self.sources)

    def sql(self) -> tuple[str, list[Any]]:
        """The same filter as a DuckDB condition over ``read_parquet`` with hive ``dt``, and its parameters."""
        parts: list[str] = ["true"]
        params: list[Any] = []
        if self.start is not None:
            parts.append("dt >= ?")
            params.append(str(self.start))
        if self.end is not None:
            parts.append("dt <= ?")
            params.append(str(self.end))
        if self.models:
            parts.append("list_contains(?, model.name)")
            params.append(list(self.models))
        if self.sources:
            parts.append("list_contains(?, source.type)")
            params.append([s.upper() for s in self.sources])
        return " AND ".join(parts), params


def filtered_copies(
    con: Any, storage: Storage, table: str, files: Sequence[str], filters: Filters
) -> dict[str, list[int]]:
    """The rows to drop from ``files`` (relative, path order): among rows passing ``filters``, each id's later copies.

    Returns ``{relative path: [row numbers in that file]}``; rows without an id are always kept.
    """
    return repeated_copies(con, storage, table, files, *filters.sql())


def iter_filtered(
    url: str,
    table: str = "pairs",
    filters: Filters | None = None,
    storage_options: dict[str, Any] | None = None,
    files: Sequence[str] | None = None,
    batch_rows: int = 4096,
    limit: str | int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows ``read_pairs(url, ..., table=table)`` gives for ``filters``, as Arrow batches in its order.

    ``files`` (relative to the root, path order) pins the read; by default every file preflog wrote for ``table``.
    ``limit`` bounds DuckDB's memory while it finds the repeated copies.

    Raises:
        FileNotFoundError: the log has no such table (and ``files`` was not given).
    """
    filters = filters or Filters()
    storage = Storage(url, storage_options)
    listed = list(files) if files is not None else data_files(storage, table, url)
    if not listed:
        return
    con = connect(limit)
    try:
        drop = filtered_copies(con, storage, table, listed, filters)
    finally:
        con.close()
    dataset = ds.dataset([storage.path(p) for p in listed], filesystem=storage.fs, format="parquet",
                         partitioning=PARTITIONING, partition_base_dir=storage.path(table),
                         exclude_invalid_files=False, schema=_schema(table))  # fmt: skip
    expression = filters.expression()
    for relative, fragment in zip(listed, dataset.get_fragments(), strict=True):
        skip = pa.array(drop.get(relative, []), pa.int64())
        seen = 0
        for batch in _fragment_batches(storage, fragment, dataset.schema, batch_rows):
            if len(skip):
                positions = pa.array(range(seen, seen + batch.num_rows), pa.int64())
                batch = batch.filter(pc.invert(pc.is_in(positions, skip)))
                seen += len(positions)
            if expression is not None:
                batch = pa.Table.from_batches([batch]).filter(expression).combine_chunks().to_batches()
                batch = batch[0] if batch else None
            if batch is not None and batch.num_rows:
                yield batch


def _fields(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema]


def _fragment_batches(
    storage: Storage, fragment: ds.ParquetFileFragment, schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """One file's rows in ``schema`` (the dataset's), ``batch_rows`` at a time.

    pyarrow's dataset scanner decodes a whole row group at once (50,000 rows of text: hundreds of MB); a
    ``ParquetFile`` read without pre-buffering decodes a batch at a time. A file whose columns differ from the
    dataset's (an older schema) goes through the scanner, which fills and casts them as ``read_table`` does.
    """
    keys = ds.get_partition_keys(fragment.partition_expression)
    if _fields(fragment.physical_schema) + [(k, schema.field(k).type) for k in keys] != _fields(schema):
        yield from fragment.to_batches(schema=schema, batch_size=batch_rows, batch_readahead=1)
        return
    with storage.fs.open(fragment.path, "rb") as f:
        parquet = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
        for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
            n = batch.num_rows
            extra = [pa.array([value] * n, schema.field(k).type) for k, value in keys.items()]
            yield pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=schema)


@dataclass(frozen=True)
class Values:
    """What :class:`Filters` can match in a table: its rows, first and last date, model names, source types."""

    rows: int
    first: str | None
    last: str | None
    models: list[str]
    sources: list[str]


def filter_values(
    url: str, table: str = "pairs", storage_options: dict[str, Any] | None = None, limit: str | int | None = None
) -> Values:
    """The values of every row of ``table``'s files (repeated copies too: a filter sees them), aggregated by DuckDB.

    Raises:
        FileNotFoundError: the log has no such table.
    """
    storage = Storage(url, storage_options)
    listed = data_files(storage, table, url)
    if not listed:
        return Values(0, None, None, [], [])
    con = connect(limit)
    try:
        query = f"""
            SELECT count(*), min(dt), max(dt),
                   list(DISTINCT model.name) FILTER (WHERE model.name IS NOT NULL),
                   list(DISTINCT source.type) FILTER (WHERE source.type IS NOT NULL)
            FROM {parquet_source(located(con, storage, listed))}"""
        rows, first, last, models, sources = con.execute(query).fetchone()
    finally:
        con.close()
    return Values(int(rows), first, last, sorted(models or []), sorted(sources or []))
