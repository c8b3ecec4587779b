"""A decoded batch, as the files of a batch need it: ids, ``dt=`` folders, and Arrow tables of any subset.

Two shapes of the same thing. :class:`ColumnRows` holds the column decoder's
lists (:mod:`.avro_columns`) and builds Arrow arrays from them directly;
:class:`DictRows` holds decoded records (dicts), as replay and the codec give
them, and converts them with :func:`.arrow.to_table`. For the same records
both give the same ids, folders and tables (schema and values; a unit test
compares the Parquet bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from preflog.schemas.tables import TABLES

from .arrow import to_table
from .column_plan import Leaf, Plan, Struct
from .naming import partition_dir

__all__ = ["ColumnRows", "DictRows", "Rows", "dirs_of"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAY_MS = 86_400_000


@runtime_checkable
class Rows(Protocol):
    """Decoded records of one table, in batch order."""

    def __len__(self) -> int: ...

    def ids(self, column: str) -> list[Any]:
        """The value of the top-level ``column`` of each record."""
        ...

    def take(self, rows: Sequence[int]) -> Rows:
        """The records at ``rows``, in that order."""
        ...

    def dirs(self, table: str, partition_by: list[str]) -> list[str]:
        """Each record's folder (:func:`.naming.partition_dir`)."""
        ...

    def table(self, schema: pa.Schema) -> pa.Table:
        """The records as an Arrow table of ``schema``."""
        ...


class DictRows:
    """Records as dicts (fastavro's shape)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def ids(self, column: str) -> list[Any]:
        return [record.get(column) for record in self.records]

    def take(self, rows: Sequence[int]) -> DictRows:
        return DictRows([self.records[i] for i in rows])

    def dirs(self, table: str, partition_by: list[str]) -> list[str]:
        return [partition_dir(table, record, partition_by) for record in self.records]

    def table(self, schema: pa.Schema) -> pa.Table:
        return to_table(self.records, schema)


def _subset(node: Any, lists: list[list[Any]], rows: Sequence[int], out: list[list[Any]]) -> None:
    """Copies the entries ``rows`` of ``node``'s lists into ``out``, as if only those had been decoded."""
    if isinstance(node, Leaf):
        values = lists[node.slot]
        out[node.slot] = [values[i] for i in rows]
        return
    if node.mask is not None:
        flags = lists[node.mask]
        out[node.mask] = [flags[i] for i in rows]
    if isinstance(node, Struct):
        for child in node.children:
            _subset(child, lists, rows, out)
        return
    offsets, new, inner = lists[node.offsets], [0], list[int]()
    for i in rows:
        start, stop = offsets[i], offsets[i + 1]
        inner.extend(range(start, stop))
        new.append(new[-1] + stop - start)
    out[node.offsets] = new
    for child in node.children:
        _subset(child, lists, inner, out)


def _leaf(values: list[Any], kind: pa.DataType, nullable: bool) -> pa.Array:
    """A leaf array; a non-nullable one under a null parent gets the placeholder ``from_pylist`` gives it."""
    text = pa.types.is_string(kind)  # UTF-8 bytes, checked by the decoder: taken as binary, then viewed as text
    array = pa.array(values, type=pa.binary() if text else kind)
    if not nullable and array.null_count:
        if isinstance(array, pa.DictionaryArray):  # index 0, as from_pylist: the batch's first value
            return pa.DictionaryArray.from_arrays(array.indices.fill_null(0), array.dictionary, safe=False)
        array = array.fill_null(pa.scalar(b"" if pa.types.is_binary(array.type) else 0).cast(array.type))
    return array.view(pa.string()) if text else array


def _array(node: Any, lists: list[list[Any]], nullable: bool) -> pa.Array:
    """The Arrow array of ``node`` from the decoder's lists."""
    if isinstance(node, Leaf):
        return _leaf(lists[node.slot], node.type, nullable)
    mask = None
    if node.mask is not None and any(lists[node.mask]):
        mask = pa.array(lists[node.mask], type=pa.bool_())
    kind = node.type
    if isinstance(node, Struct):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        children = [_array(c, lists, f.nullable) for c, f in zip(node.children, fields, strict=True)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
    inner = [kind.key_field, kind.item_field] if isinstance(kind, pa.MapType) else [kind.value_field]
    items = [_array(c, lists, f.nullable) for c, f in zip(node.children, inner, strict=True)]
    offsets = pa.array(lists[node.offsets], type=pa.int32())
    if isinstance(kind, pa.MapType):
        return pa.MapArray.from_arrays(offsets, items[0], items[1], type=kind, mask=mask)
    return pa.ListArray.from_arrays(offsets, items[0], type=kind, mask=mask)


def dirs_of(
    table: str,
    partition_by: list[str],
    names: list[str],
    times: Sequence[int] | None,
    table_of: Callable[[list[str]], pa.Table],
) -> list[str]:
    """Each record's folder (:func:`.naming.partition_dir`) for the columnar shapes of :class:`Rows`.

    Args:
        table: The table.
        partition_by: Extra partition columns.
        names: The top-level columns there are.
        times: The time column, in milliseconds (None when it is not there as such).
        table_of: The columns ``names`` as an Arrow table.
    """
    time = TABLES[table].time_column
    if partition_by or times is None:  # values as fastavro gives them, through Arrow
        wanted = [n for n in names if n == time or any(c.split(".")[0] == n for c in partition_by)]
        records = table_of(wanted).to_pylist(maps_as_pydicts="strict")
        return [partition_dir(table, record, partition_by) for record in records]
    days: dict[int, str] = {}  # by day: one folder name per day, not one datetime per record
    out = []
    for ms in times:
        day = ms // DAY_MS
        found = days.get(day)
        if found is None:
            found = days[day] = partition_dir(table, {time: EPOCH + timedelta(days=day)}, [])
        out.append(found)
    return out


class ColumnRows:
    """Records as the column decoder's lists: one per leaf, null flags and offsets (see :class:`.avro_columns.Plan`).

    Args:
        plan: The decoder that filled the lists.
        names: The top-level field names, in order.
        lists: The lists, one per slot of ``plan``.
        count: How many records the lists hold.
        rows: The records taken, by position in the lists (None: all of them).
    """

    def __init__(
        self, plan: Plan, names: list[str], lists: list[list[Any]], count: int, rows: Sequence[int] | None = None
    ) -> None:
        self.plan = plan
        self.names = names
        self.lists = lists
        self.count = count
        self.rows = rows

    def __len__(self) -> int:
        return self.count if self.rows is None else len(self.rows)

    def _leaf(self, column: str) -> list[Any] | None:
        node = self.plan.columns[self.names.index(column)] if column in self.names else None
        if not isinstance(node, Leaf):
            return None
        values = self.lists[node.slot]
        return values if self.rows is None else [values[i] for i in self.rows]

    def ids(self, column: str) -> list[Any]:
        values = self._leaf(column)
        if values is None:
            return [None] * len(self)
        node = self.plan.columns[self.names.index(column)]
        return [v.decode() if v is not None else None for v in values] if pa.types.is_string(node.type) else values

    def take(self, rows: Sequence[int]) -> ColumnRows:
        taken = rows if self.rows is None else [self.rows[i] for i in rows]
        return ColumnRows(self.plan, self.names, self.lists, self.count, taken)

    def dirs(self, table: str, partition_by: list[str]) -> list[str]:
        return dirs_of(table, partition_by, self.names, self._leaf(TABLES[table].time_column), self.table_of)

    def table_of(self, names: list[str], schema: pa.Schema | None = None) -> pa.Table:
        """The columns ``names`` (of ``schema``, or with the decoder's types) as an Arrow table."""
        lists = self.lists
        if self.rows is not None:
            lists = list(lists)
            for name in names:
                _subset(self.plan.columns[self.names.index(name)], self.lists, self.rows, lists)
        arrays, fields = [], []
        for name in names:
            node = self.plan.columns[self.names.index(name)]
            field = schema.field(name) if schema is not None else pa.field(name, node.type)
            arrays.append(_array(node, lists, field.nullable))
            fields.append(field)
        return pa.Table.from_arrays(arrays, schema=schema if schema is not None else pa.schema(fields))

    def table(self, schema: pa.Schema) -> pa.Table:
        return self.table_of(schema.names, schema)
