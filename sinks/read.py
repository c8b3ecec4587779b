"""Reading the audit log back: pyarrow datasets with partition pruning and dedupe by id.

import preflog
pairs = preflog.read_pairs("file:///data/audit", start="2026-11-01", models=["acme-chat"])
pairs.to_pandas()  # or polars.from_arrow(pairs), duckdb.sql("select ... from pairs")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .storage import Storage
from .writer import ID_COLUMN

__all__ = ["dedupe", "read_pairs", "read_table"]

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")


def read_table(
    url: str,
    table: str = "pairs",
    filter: ds.Expression | None = None,
    columns: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """One table of the audit log (pairs, unpaired, unmatched, dead_letter), deduplicated by its id."""
    storage = Storage(url, storage_options)
    path = storage.path(table)
    storage.fs.invalidate_cache()  # fsspec caches listings per process; the log grows
    if not storage.fs.exists(path):
        raise FileNotFoundError(f"no {table} table under {url} (is this an audit log root?)")
    dataset = ds.dataset(
        path, filesystem=storage.fs, format="parquet", partitioning=PARTITIONING, exclude_invalid_files=False
    )
    result = dataset.to_table(filter=filter, columns=list(columns) if columns else None)
    return dedupe(result, ID_COLUMN.get(table)) if table in ID_COLUMN else result


def dedupe(table: pa.Table, column: str | None) -> pa.Table:
    """Keep the first row of each id (the log holds each id once; this guards copies made outside it)."""
    if column is None or column not in table.column_names or table.num_rows == 0:
        return table
    indexed = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    first = indexed.group_by(column).aggregate([("__row", "min")]).column("__row_min")
    return table.take(pc.sort_indices(first))


def _filters(
    start: str | date | None, end: str | date | None, models: Sequence[str] | None, sources: Sequence[str] | None
) -> ds.Expression | None:
    parts = []
    if start is not None:
        parts.append(ds.field("dt") >= str(start))
    if end is not None:
        parts.append(ds.field("dt") <= str(end))
    if models:
        parts.append(ds.field("model", "name").isin(list(models)))
    if sources:
        parts.append(ds.field("source", "type").isin([s.upper() for s in sources]))
    expression = None
    for part in parts:
        expression = part if expression is None else expression & part
    return expression


def read_pairs(
    url: str,
    start: str | date | None = None,
    end: str | date | None = None,
    models: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    table: str = "pairs",
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Preference pairs (or ``table="unpaired"`` signals) by date range (inclusive), model name and source type."""
    return read_table(url, table, _filters(start, end, models, sources), storage_options=storage_options)
