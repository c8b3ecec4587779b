"""Parquet bytes of one batch (the format knows nothing about where the bytes go)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROW_GROUP_ROWS", "encode", "read_ids"]

ROW_GROUP_ROWS = 50_000


def encode(table: pa.Table) -> bytes:
    """zstd, dictionary-encoded strings, millisecond UTC timestamps, the schema's docs in its metadata."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression="zstd",
        use_dictionary=True,
        row_group_size=ROW_GROUP_ROWS,
        coerce_timestamps="ms",
        allow_truncated_timestamps=False,
        store_schema=True,
        write_statistics=True,
    )
    return buf.getvalue()


def read_ids(data: bytes, column: str) -> list[str]:
    """The non-empty ids in ``column`` of a Parquet file (none for files written before the column existed)."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    if column not in parquet.schema_arrow.names:
        return []
    return [i for i in parquet.read(columns=[column]).column(column).to_pylist() if i]
