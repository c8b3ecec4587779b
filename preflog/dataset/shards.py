"""A build's Parquet files, written batch by batch as DuckDB produces the rows, never the whole table at once.

A row group is written whole (Parquet keeps its columns together), so it is the unit that memory is bounded
by: :func:`rows_per_group` sizes it from the rows' average text size, at most pyarrow's default of 1,048,576
rows. Each row group is one contiguous slice of the rows, as one chunk: the file has the same bytes however
the batches came, and a table that fits one group has the bytes ``pq.write_table`` gives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["GROUP_BYTES", "ParquetOut", "rows_per_group"]

#: the data a row group holds at most (about; a single row larger than this is a group of its own)
GROUP_BYTES = 64 * 2**20
_MAX_ROWS = 1024 * 1024  # pyarrow's default row group


def rows_per_group(con: Any, relation: str, texts: Iterable[str]) -> int:
    """Rows per row group for ``relation``: :data:`GROUP_BYTES` over its rows' average size of ``texts`` columns.

    Computed from the data alone (never from the memory limit), so a build's bytes do not depend on its limit.
    """
    size = " + ".join(f"coalesce(strlen({c}), 0)" for c in texts)
    average = con.execute(f"SELECT avg({size}) FROM {relation}").fetchall()[0][0] or 0
    # the texts come twice in a row with messages, and the other columns add about 1 kB
    return int(max(1, min(_MAX_ROWS, GROUP_BYTES // (2 * float(average) + 1024))))


class ParquetOut:
    """A Parquet file written in row groups of ``group_rows``, from tables of any size."""

    def __init__(self, path: Path, group_rows: int, **options: Any) -> None:
        self.path = path
        self.group_rows = group_rows
        self.options = options
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, rows: pa.Table) -> None:
        """Add ``rows``; every full row group is written."""
        if rows.num_rows == 0:
            return
        self._pending.append(rows)
        self._pending_rows += rows.num_rows
        while self._pending_rows >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        group, rest = table.slice(0, n).combine_chunks(), table.slice(n)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, group.schema, **self.options)
        self._writer.write_table(group, row_group_size=max(n, 1))
        self.rows += group.num_rows
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self, schema: pa.Schema | None = None) -> bool:
        """Write what is left and close; False (and no file) when no row came and no ``schema`` is given."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        if self._writer is None:
            if schema is None:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema.empty_table(), self.path, **self.options)
            return True
        self._writer.close()
        return True
