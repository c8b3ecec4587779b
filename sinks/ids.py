"""Ids of the audit log counted on disk: a file-backed DuckDB table, not a Python set, so memory stays bounded.

A table of the log holds one id per row, and the log grows without end (10M ids in a ``Counter`` are about
1.5 GB). :class:`IdCounts` appends each file's id column to a DuckDB table in a temporary folder and counts
repeated ids with a ``GROUP BY`` that spills beyond the memory limit; the folder goes when it is closed.

    with IdCounts("256MB") as ids:
        for data in files:
            ids.add(file_ids(data, "pair_id"))
        repeated = ids.repeated()
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .scan import connect

__all__ = ["IdCounts", "file_ids"]


def file_ids(data: bytes, column: str) -> pa.Table:
    """Column ``column`` of a Parquet file's bytes, as a one-column table named ``id`` (none: no such column)."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    if column not in parquet.schema_arrow.names:
        return pa.table({"id": pa.array([], pa.string())})
    return pa.table({"id": parquet.read(columns=[column]).column(column)})


class IdCounts:
    """Ids added file by file, counted by DuckDB in a temporary folder (use it as a context manager).

    Args:
        limit: DuckDB's memory limit (:func:`preflog.sinks.scan.memory_limit`); beyond it, it spills there.
    """

    def __init__(self, limit: str | int | None = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="preflog-ids-")
        database = os.path.join(self.folder, "ids.duckdb")
        self.con: Any = connect(limit, spill=os.path.join(self.folder, "spill"), database=database)
        self.clear()

    def clear(self) -> None:
        """Forget every id added (the next table starts empty)."""
        self.con.execute("CREATE OR REPLACE TABLE ids (id VARCHAR)")

    def add(self, ids: pa.Table) -> None:
        """Add the non-empty ids of a one-column table named ``id`` (:func:`file_ids`)."""
        if ids.num_rows == 0:
            return
        self.con.register("__preflog_ids", ids)
        try:
            self.con.execute("INSERT INTO ids SELECT id FROM __preflog_ids WHERE coalesce(id, '') <> ''")
        finally:
            self.con.unregister("__preflog_ids")

    def repeated(self) -> int:
        """How many ids were added after their first time (an id added three times counts 2)."""
        query = "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ids GROUP BY id HAVING n > 1)"
        (count,) = self.con.execute(query).fetchone()
        return int(count)

    def close(self) -> None:
        """Close the connection and remove the folder."""
        try:
            self.con.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> IdCounts:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
