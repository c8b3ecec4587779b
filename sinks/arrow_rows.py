"""A batch decoded in compiled code (:mod:`.avro_arrow`), as :class:`.columns.Rows`.

The table keeps arrow-avro's types until a file is written: :meth:`ArrowRows.table`
casts it to the file schema the way ``pyarrow.Table.from_pylist`` builds it from
dicts, so the Parquet bytes are those of the other two shapes (a unit test
compares them): enums dictionary-encoded in order of first appearance within
the rows written, and a non-nullable field under a null parent filled with the
placeholder ``from_pylist`` gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from preflog.schemas.tables import TABLES

from .columns import dirs_of

__all__ = ["ArrowRows", "conform"]


def _placeholder(array: pa.Array) -> pa.Array:
    """Nulls of a non-nullable leaf (under a null parent) as ``from_pylist`` fills them."""
    if not array.null_count:
        return array
    if isinstance(array, pa.DictionaryArray):  # index 0, as from_pylist: the first value written
        return pa.DictionaryArray.from_arrays(array.indices.fill_null(0), array.dictionary, safe=False)
    kind = array.type
    if pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_map(kind):
        return array
    empty = b"" if pa.types.is_binary(kind) else "" if pa.types.is_string(kind) else 0
    return array.fill_null(pa.scalar(empty).cast(kind))


def conform(array: pa.Array, kind: pa.DataType, nullable: bool = True) -> pa.Array:
    """``array`` (arrow-avro's types) as an array of ``kind``, as ``from_pylist`` would build it."""
    mask = array.is_null() if array.null_count else None
    if pa.types.is_dictionary(kind):
        if isinstance(array, pa.DictionaryArray):
            array = array.dictionary_decode()
        out = array.cast(kind.value_type).dictionary_encode().cast(kind)
    elif pa.types.is_struct(kind):
        children = [conform(array.field(i), f.type, f.nullable) for i, f in enumerate(kind)]
        out = pa.StructArray.from_arrays(children, fields=list(kind), mask=mask)
    elif pa.types.is_map(kind):
        keys = conform(array.keys, kind.key_type, False)
        items = conform(array.items, kind.item_type, kind.item_field.nullable)
        out = pa.MapArray.from_arrays(array.offsets.cast(pa.int32()), keys, items, type=kind, mask=mask)
    elif pa.types.is_list(kind):
        values = conform(array.values, kind.value_type, kind.value_field.nullable)
        out = pa.ListArray.from_arrays(array.offsets.cast(pa.int32()), values, type=kind, mask=mask)
    else:
        out = array.cast(kind)
    return out if nullable else _placeholder(out)


def _flat(array: pa.Array) -> pa.Array:
    """``array`` without a slice offset, so its ``offsets``, ``keys`` and ``values`` line up with its rows."""
    return pa.concat_arrays([array]) if array.offset else array


class ArrowRows:
    """Records as one Arrow table of arrow-avro's types (see the module docstring).

    Args:
        table: The decoded records, one row each, in batch order.
    """

    def __init__(self, table: pa.Table) -> None:
        self.data = table

    def __len__(self) -> int:
        return self.data.num_rows

    def ids(self, column: str) -> list[Any]:
        if column not in self.data.column_names:
            return [None] * len(self)
        return list(self.data.column(column).to_pylist())

    def take(self, rows: Sequence[int]) -> ArrowRows:
        return ArrowRows(self.data.take(pa.array(rows, type=pa.int64())))

    def dirs(self, table: str, partition_by: list[str]) -> list[str]:
        time = TABLES[table].time_column
        times = self.data.column(time).cast(pa.int64()).to_pylist() if time in self.data.column_names else None
        return dirs_of(table, partition_by, self.data.column_names, times, self.table_of)

    def table_of(self, names: list[str], schema: pa.Schema | None = None) -> pa.Table:
        """The columns ``names`` (of ``schema``, or as decoded) as an Arrow table."""
        if schema is None:
            return self.data.select(names)
        arrays = []
        for name in names:
            field = schema.field(name)
            arrays.append(conform(_flat(self.data.column(name).combine_chunks()), field.type, field.nullable))
        return pa.Table.from_arrays(arrays, schema=schema)

    def table(self, schema: pa.Schema) -> pa.Table:
        return self.table_of(schema.names, schema)
