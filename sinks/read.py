"""Reading the audit log back: pyarrow datasets with partition pruning and dedupe by id.

import preflog
pairs = preflog.read_pairs("file:///data/audit", start="2026-11-01", models=["acme-chat"])
pairs.to_pandas()  # or polars.from_arrow(pairs), duckdb.sql("select ... from pairs")

These functions return one Arrow table holding every row read: right for a notebook or a log of a
few hundred thousand pairs (prompts and answers of 0.5-2 kB take about 4 GB a million pairs in
memory). For a log of any size read it with :mod:`preflog.sinks.scan` instead: ``log_view`` (a
DuckDB view, memory bounded by a limit, spilling to disk) or ``iter_batches`` (Arrow batches in
this module's order), both with the same rows and the same first-copy-wins dedupe by id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from preflog.schemas.tables import TABLES

from .naming import parse_file_name
from .storage import Storage

__all__ = ["dedupe", "read_pairs", "read_table", "turn_opener"]

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")


def read_table(
    url: str,
    table: str = "pairs",
    filter: ds.Expression | None = None,
    columns: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    files: Sequence[str] | None = None,
) -> pa.Table:
    """One table of the audit log (pairs, unpaired, unmatched, dead_letter), deduplicated by its id, in memory.

    For a large log use :func:`preflog.sinks.scan.log_view` or :func:`preflog.sinks.scan.iter_batches`: the
    same rows without holding them. Reads the files preflog wrote (named by their offsets; any other file, such
    as a stray copy, is left out and reported by ``preflog verify``) in path
    order, rows in file order, so the same log always reads the same way.
    ``files`` (paths relative to the log root, as :func:`data_files` lists
    them) pins the read to those files.
    """
    storage = Storage(url, storage_options)
    path = storage.path(table)
    if files is None:
        files = data_files(storage, table, url)
    files = [storage.path(p) for p in files]
    dataset = ds.dataset(
        files,
        filesystem=storage.fs,
        format="parquet",
        partitioning=PARTITIONING,
        partition_base_dir=path,
        exclude_invalid_files=False,
        schema=_schema(table),  # the newest: files of older schema versions read with the new fields null
    )
    result = dataset.to_table(filter=filter, columns=list(columns) if columns else None)
    return dedupe(result, TABLES[table].id_column)


def data_files(storage: Storage, table: str, url: str = "") -> list[str]:
    """The files preflog wrote for ``table``, relative to the log root, in path order (fresh: the log grows).

    Raises:
        FileNotFoundError: the log has no such table.
    """
    storage.fs.invalidate_cache()  # fsspec caches listings per process
    if not storage.fs.exists(storage.path(table)):
        raise FileNotFoundError(f"no {table} table under {url or storage.url} (is this an audit log root?)")
    return [p for p in storage.list(table) if parse_file_name(p) is not None]


@cache
def _schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table`` at the newest version of its record (what every file is read as).

    Read from the ``.avsc`` file itself (the schema registry would load fastavro: reading stays light).
    """
    import preflog.schemas

    from .arrow import arrow_schema

    folder = Path(preflog.schemas.__file__).parent / "avro" / TABLES[table].record
    newest = max(folder.glob("*.avsc"), key=lambda p: int(p.stem))
    return arrow_schema(json.loads(newest.read_text())).append(pa.field("dt", pa.string()))


def dedupe(table: pa.Table, column: str | None) -> pa.Table:
    """Keep the first row of each (non-empty) id, in row order.

    The log holds each id once; this guards copies made outside it. Rows keep their order, so a read or an
    export of the same log is the same, byte for byte.
    """
    if column is None or column not in table.column_names or table.num_rows == 0:
        return table
    ids = table.column(column)
    rows = pa.array(range(table.num_rows), pa.int64())
    blank = pc.fill_null(pc.equal(ids, ""), True)  # rows written before the table had ids: always kept
    own = pc.binary_join_element_wise("\x00row:", pc.cast(rows, pa.string()), "")  # a key no real id has
    keyed = pa.table({"id": pc.if_else(blank, own, ids), "__row": rows})
    first = keyed.group_by("id", use_threads=False).aggregate([("__row", "min")]).column("__row_min")
    if len(first) == table.num_rows:
        return table  # no repeated id
    return table.take(first.take(pc.array_sort_indices(first)))


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
    maps_as_lists: bool = False,
    keys: Any = "auto",
    subjects: Sequence[str] | None = None,
    histories: bool = True,
) -> pa.Table:
    """Preference pairs (or ``table="unpaired"`` signals) by date range (inclusive), model name and source type.

    ``subjects`` keeps the rows of these people: raw user ids (with privacy on, turned into their pseudonyms
    with the settings' pseudonym secret), pseudonyms (``psn_...``) or labels (``sub_...``); see
    :mod:`preflog.privacy.subjects`.

    Sealed personal fields (privacy on) are opened with ``keys``: a
    :class:`preflog.privacy.keyring.Keyring`, ``"auto"`` (the environment's settings, read only when a
    sealed field is met) or ``"sealed"`` (leave them sealed). Opened tables have two more columns:
    ``subject`` (the pseudonym of the person a row is about) and ``erased`` (its subject was erased: its
    personal fields are null; such rows are kept, and counted by every preflog command).

    With ``histories`` (the default), a conversation turn given by reference (``conversation.previous_request_id``
    set) has its whole history as ``prompt_messages``, resolved from the log's ``turns`` table (opened with the
    same ``keys``) by :mod:`preflog.sinks.history`; a history that cannot be resolved keeps the messages the turn
    sent and says why in ``history_problem`` (ids only). A table without such turns gets no such column.
    ``read_pairs`` applies no purpose (it returns every row, whatever its consent): an earlier turn's consent and
    retention are not checked either (only erasure stops a history); ``stream_pairs``, ``preflog export`` and a
    dataset build check them for the purpose they read for.

    The whole selection is one Arrow table in memory: for a large log, ``preflog export`` or
    :mod:`preflog.sinks.scan` read the same rows batch by batch.

    With ``maps_as_lists``, every Arrow map column (metadata, ``sampling.extra``) becomes a list of
    ``{key, value}`` structs (:func:`without_maps`): Hugging Face ``datasets`` has no map type
    (huggingface/datasets#5612), so ``datasets.Dataset(pyarrow_table)`` takes this view.
    """
    rows = read_table(url, table, _filters(start, end, models, sources), storage_options=storage_options)
    rows = opened(rows, table, keys)
    if subjects is not None:
        from preflog.privacy.subjects import keep_subjects, labels

        rows = keep_subjects(rows, labels(subjects))
    if histories:
        from .turns import resolve_table

        rows = resolve_table(rows, url, storage_options, turn_opener(keys))  # no purpose: every row, as without
    return without_maps(rows) if maps_as_lists else rows


def turn_opener(keys: Any) -> Callable[[pa.Table], pa.Table]:
    """Opens rows of the turns table as :func:`opened` opens a table with ``keys`` (``"auto"`` loaded once)."""
    held = [keys]

    def open_turns(rows: pa.Table) -> pa.Table:
        if isinstance(held[0], str) and held[0] == "auto":
            from preflog.privacy.keyring import any_sealed, reader_keyring

            if not any_sealed(rows):
                return rows
            held[0] = reader_keyring()
        return opened(rows, "turns", held[0])

    return open_turns


def opened(rows: pa.Table, table: str, keys: Any) -> pa.Table:
    """``rows`` of ``table`` with sealed fields opened by ``keys`` (see :func:`read_pairs`)."""
    if isinstance(keys, str) and keys not in ("auto", "sealed"):
        raise ValueError(f"keys: expected a Keyring, 'auto' or 'sealed', got {keys!r}")
    if keys == "sealed":
        return rows
    from preflog.privacy.keyring import any_sealed, open_table, reader_keyring

    if not any_sealed(rows):
        return rows
    return open_table(rows, table, reader_keyring() if keys == "auto" else keys)


def _unmap(array: pa.Array) -> pa.Array:
    """``array`` with every map inside it turned into a list of ``{key, value}`` structs (same rows, same order)."""
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([_unmap(c) for c in array.chunks], type=_unmapped_type(array.type))
    if array.offset:  # a slice: its offsets and null bitmap are rebuilt from zero first
        array = pa.concat_arrays([array])
    if pa.types.is_map(array.type):
        entries = pa.StructArray.from_arrays([_unmap(array.keys), _unmap(array.items)], names=["key", "value"])
        return pa.ListArray.from_arrays(array.offsets, entries, mask=array.is_null())
    if pa.types.is_struct(array.type):
        fields = [_unmap(array.field(i)) for i in range(array.type.num_fields)]
        names = [array.type.field(i).name for i in range(array.type.num_fields)]
        return pa.StructArray.from_arrays(fields, names=names, mask=array.is_null())
    if pa.types.is_list(array.type):
        return pa.ListArray.from_arrays(array.offsets, _unmap(array.values), mask=array.is_null())
    return array


def _unmapped_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_map(t):
        entry = pa.struct([pa.field("key", _unmapped_type(t.key_type)), pa.field("value", _unmapped_type(t.item_type))])
        return pa.list_(entry)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, _unmapped_type(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(_unmapped_type(t.value_type))
    return t


def without_maps(table: pa.Table) -> pa.Table:
    """``table`` with its map columns (also inside structs and lists) as lists of ``{key, value}`` structs."""
    columns = [_unmap(table.column(i)) for i in range(table.num_columns)]
    return pa.table(columns, names=table.column_names)
