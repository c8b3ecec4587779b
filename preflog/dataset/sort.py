"""Sorting wide rows (prompts and answers of kilobytes) in bounded memory, where DuckDB's ORDER BY cannot.

DuckDB spills joins and aggregates to disk, but its sort of rows carrying long texts needs memory in
proportion to them (seen: 0.9 GB of text failed under a 512 MB limit). So a build sorts the way external
sorts do, by ranges of the first key: the rows are written once to range buckets on disk (Arrow IPC,
lz4), the bucket bounds taken from a sample of that key so each bucket holds about ``budget`` bytes; each
bucket is then sorted in memory by every key (pyarrow: byte order, nulls last, as DuckDB's ORDER BY) and
handed on. Rows equal in the first key share a bucket, so the buckets in turn give ``ORDER BY keys``.
Only the columns an output needs are carried, so the disk a sort takes is about the size of its output.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

__all__ = ["sorted_batches"]

_BATCH = 2048
_SAMPLE = 20_000


def sorted_batches(
    con: Any, source: str, select: str, keys: list[str], budget: int, work: Path, args: list[Any] | None = None
) -> Iterator[pa.Table]:
    """The rows of ``SELECT {select} FROM {source} ORDER BY {keys}``, as tables in order, in bounded memory.

    ``keys`` are SQL expressions over ``source``'s columns, ascending, nulls last. A bucket holds about
    ``budget`` bytes (a run of rows equal in the first key is never split) and is handed on in slices.
    ``work`` is a folder for the buckets, removed when the iteration ends.
    """
    key_columns = ", ".join(f"{k} AS __key{i}" for i, k in enumerate(keys))
    query = f"SELECT {select}, {key_columns} FROM {source}"
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")  # a wide row's stream: each thread buffers its own (two overran a 512MB build)
    try:
        yield from _sorted(con, source, query, keys, budget, work, args)
    finally:
        con.execute(f"SET threads = {int(threads)}")


def _sorted(
    con: Any, source: str, query: str, keys: list[str], budget: int, work: Path, args: list[Any] | None
) -> Iterator[pa.Table]:
    names = [f"__key{i}" for i in range(len(keys))]
    rows = int(con.execute(f"SELECT count(*) FROM {source}", args or []).fetchall()[0][0])
    reader = con.sql(query, params=args or []).to_arrow_reader(_BATCH)
    first = reader.read_next_batch() if rows else None
    if first is None or rows <= first.num_rows:  # one batch: nothing to spill
        rest = reader.read_all()
        whole = pa.Table.from_batches([first, *rest.to_batches()] if first is not None else [], schema=reader.schema)
        yield _sort(whole, names)
        return
    schema = reader.schema
    row_bytes = first.nbytes / max(first.num_rows, 1)
    reader.close()
    bounds = _bounds(con, source, keys[0], rows, row_bytes, budget, args)
    folder = work / f"sort-{id(query):x}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        _scatter(con.sql(query, params=args or []).to_arrow_reader(_BATCH), schema, bounds, folder)
        for path in sorted(folder.iterdir()):
            with pa.memory_map(str(path)) as mapped:
                part = _sort(ipc.open_file(mapped).read_all(), names)
            path.unlink()
            for first_row in range(0, part.num_rows, _BATCH):  # consumers copy what they take: in small parts
                yield part.slice(first_row, _BATCH)
            del part
            pa.default_memory_pool().release_unused()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _scatter(reader: pa.RecordBatchReader, schema: pa.Schema, bounds: pa.Array, folder: Path) -> None:
    """Every batch of ``reader`` into the bucket file of its rows' first key."""
    writers: dict[int, ipc.RecordBatchFileWriter] = {}
    options = ipc.IpcWriteOptions(compression="lz4")
    try:
        for batch in reader:
            bucket = _bucket_of(batch.column("__key0"), bounds)
            for b in np.unique(bucket).tolist():
                if b not in writers:
                    writers[b] = ipc.new_file(str(folder / f"{b:06d}.arrow"), schema, options=options)
                writers[b].write_batch(batch.filter(pa.array(bucket == b)))
    finally:
        for writer in writers.values():
            writer.close()


def _bounds(
    con: Any, source: str, key: str, rows: int, row_bytes: float, budget: int, args: list[Any] | None
) -> pa.Array:
    """Sorted, distinct lower bounds of buckets 1.. of the first key (bucket 0 is everything below the first)."""
    buckets = max(1, int(rows * row_bytes / max(budget, 1)) + 1)
    sampled = f"SELECT {key} AS k FROM {source} USING SAMPLE reservoir({_SAMPLE} ROWS) REPEATABLE (7)"
    table = con.sql(f"SELECT k FROM ({sampled}) WHERE k IS NOT NULL", params=args or []).to_arrow_table()
    sample = table.column("k").combine_chunks()
    if buckets == 1 or len(sample) == 0:
        return sample.slice(0, 0)
    ordered = pc.take(sample, pc.sort_indices(sample))
    at = np.linspace(0, len(ordered) - 1, buckets + 1)[1:-1].astype(np.int64)
    return pc.unique(pc.take(ordered, pa.array(at)))


def _bucket_of(keys: pa.Array, bounds: pa.Array) -> np.ndarray:
    """The bucket of each key: how many bounds are at or below it (a vectorised binary search); nulls last."""
    n = len(keys)
    if len(bounds) == 0:
        return np.zeros(n, dtype=np.int64)
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, len(bounds), dtype=np.int64)
    while (open_ := lo < hi).any():
        mid = (lo + hi) // 2
        probe = pc.take(bounds, pa.array(np.minimum(mid, len(bounds) - 1)))
        at_or_above = pc.fill_null(pc.greater_equal(keys, probe), True).to_numpy(zero_copy_only=False)
        lo = np.where(open_ & at_or_above, mid + 1, lo)
        hi = np.where(open_ & ~at_or_above, mid, hi)
    return lo


def _sort(table: pa.Table, keys: list[str]) -> pa.Table:
    if table.num_rows > 1:
        table = table.take(pc.sort_indices(table, sort_keys=[(k, "ascending", "at_end") for k in keys]))
    return table.drop_columns(keys)
