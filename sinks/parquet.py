"""Parquet bytes of one batch (the format knows nothing about where the bytes go)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROW_GROUP_ROWS", "encode"]

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
