"""The bytes each decoded record takes in canonical Avro: how :mod:`.avro_arrow` knows it read what it was given.

arrow-avro decodes a block of records back to back; it does not say where each
record ended. :class:`Sizes` computes, with vectorised arithmetic, how many bytes
each decoded row takes when written canonically (shortest varints, each array or
map in one block). Encoding a value never takes fewer bytes than that, and the
reader cannot read past the block, so when every row's canonical size equals its
value's length, every record began and ended where its value did and was written
canonically: there is nothing the rows could have been read from but the values.

The same pass checks what arrow-avro does not: strings, arrays and maps within
the codec's limits, booleans written as 0 or 1 (arrow-avro reads any other byte
as true) and union indices of 0 or 1 (arrow-avro reads any other as the value's
branch); the codec refuses both. Types it does not know raise
ValueError when the schema is compiled, so such tables never take this path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Sizes"]

#: each element's start in the batch's bytes, and whether it is there at all (not under a null parent)
Placed = tuple[np.ndarray, np.ndarray]
FIXED = {"null": 0, "boolean": 1, "float": 4, "double": 8}
VARINTS = ("int", "long")


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of the zigzag varint of each int64 in ``values``."""
    z = ((values << 1) ^ (values >> 63)).view(np.uint64)
    out = np.ones(len(z), dtype=np.int64)
    top = int(z.max()) if len(z) else 0
    for k in range(1, 10):
        if top < 1 << (7 * k):  # no value needs more bytes (lengths: usually one or two passes)
            break
        out += z >= np.uint64(1 << (7 * k))
    return out


def _ints(array: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(array.type):
        array = array.cast(pa.int64())
    return np.asarray(pc.fill_null(array, 0).cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


class Sizes:
    """Canonical sizes of the rows of one Avro record schema, as arrow-avro decodes it.

    Args:
        schema: The record schema (JSON, logical types as written).

    Raises:
        ValueError: a type this check does not know (unions other than [null, T], enums of 64 symbols or
            more, logical types other than uuid and timestamp-millis, timestamps or maps inside arrays).
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.named: dict[str, Any] = {}
        self.fields: list[tuple[str, Any]] = [(f["name"], f["type"]) for f in schema["fields"]]
        self.timestamps: list[tuple[str, ...]] = []  # where timestamps are (field names from the top; none in arrays)
        self.maps: list[tuple[str, ...]] = []  # where maps are (none in arrays)
        for name, avro in self.fields:
            self._known(avro, (name,), False)

    def _resolve(self, avro: Any) -> Any:
        if isinstance(avro, str) and avro not in FIXED and avro not in VARINTS and avro not in ("string", "bytes"):
            return self.named[avro.split(".")[-1]]
        return avro

    def _known(self, avro: Any, path: tuple[str, ...], nested: bool) -> None:
        """Learns the named types and where timestamps and maps are; ValueError for what is not checked."""
        if isinstance(avro, list):
            if len(avro) != 2 or avro[0] != "null":
                raise ValueError(f"only [null, T] unions are checked, got {avro}")
            return self._known(avro[1], path, nested)
        avro = self._resolve(avro)
        if isinstance(avro, str):
            return None
        kind, logical = avro["type"], avro.get("logicalType")
        if logical not in (None, "uuid", "timestamp-millis") or (logical == "timestamp-millis" and kind != "long"):
            raise ValueError(f"the logical type {logical} of {kind} is not checked")
        if (logical == "timestamp-millis" or kind == "map") and nested:
            raise ValueError(f"{'a timestamp' if logical else 'a map'} inside an array or map is not checked")
        if logical == "timestamp-millis":
            self.timestamps.append(path)
        if kind in ("record", "enum", "fixed"):
            self.named[avro["name"]] = avro
        if kind == "record":
            for field in avro["fields"]:
                self._known(field["type"], (*path, field["name"]), nested)
        elif kind == "enum" and len(avro["symbols"]) >= 64:
            raise ValueError("enums of 64 symbols or more are not checked")
        elif kind == "map":
            self.maps.append(path)
            self._known(avro["values"], path, True)
        elif kind == "array":
            self._known(avro["items"], path, True)
        return None

    def check(
        self, batch: pa.RecordBatch, lengths: np.ndarray, data: np.ndarray, max_string: int, max_items: int
    ) -> bool:
        """Whether every row's canonical size is its value's length, within the limits, unions and booleans canonical.

        Args:
            batch: The decoded rows, one column per field of the schema, in order.
            lengths: Each value's length in bytes.
            data: The values back to back, as uint8.
            max_string: The longest string or bytes value accepted.
            max_items: The most entries accepted in one array or map.
        """
        self.max_string, self.max_items, self.ok, self.data = max_string, max_items, True, data
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        at, exists = starts.copy(), np.ones(len(lengths), dtype=bool)
        for (_, avro), column in zip(self.fields, batch.columns, strict=True):
            at += self._size(column, avro, (at, exists))
            if not self.ok:
                return False
        return bool(np.array_equal(at - starts, lengths))

    def _bytes_are(self, where: np.ndarray, allowed: tuple[int, ...]) -> None:
        """Marks the batch not sure unless the byte at each of ``where`` is one of ``allowed``."""
        if (
            where.size
            and self.ok
            and (int(where.max()) >= self.data.size or not np.isin(self.data[where], allowed).all())
        ):
            self.ok = False

    def _size(self, array: pa.Array, avro: Any, at: Placed | None = None) -> np.ndarray:
        """Each element's canonical size (garbage where a parent is null: the union above masks it).

        With ``at`` (each element's start in the data, and whether it exists there: not under a null parent),
        the union indices and booleans are checked at their positions too.
        """
        if isinstance(avro, list):
            valid = array.is_valid().to_numpy(zero_copy_only=False)
            inner = None
            if at is not None:
                starts, exists = at
                self._bytes_are(starts[exists & ~valid], (0,))
                self._bytes_are(starts[exists & valid], (2,))
                inner = (starts + 1, exists & valid)
            return 1 + np.where(valid, self._size(array, avro[1], inner), 0)
        avro = self._resolve(avro)
        if isinstance(avro, str):
            if avro == "boolean" and at is not None:
                self._bytes_are(at[0][at[1]], (0, 1))
            if avro in FIXED:
                return np.full(len(array), FIXED[avro], dtype=np.int64)
            if avro in VARINTS:
                return _varint_sizes(_ints(array))
            return self._bytes(array)
        kind = avro["type"]
        if kind == "record":
            out = np.zeros(len(array), dtype=np.int64)
            for i, field in enumerate(avro["fields"]):
                out += self._size(array.field(i), field["type"], None if at is None else (at[0] + out, at[1]))
            return out
        if kind == "enum":
            return np.ones(len(array), dtype=np.int64)
        if kind == "fixed":
            return np.full(len(array), avro["size"], dtype=np.int64)
        if kind in ("array", "map"):
            return self._blocks(array, avro, at)
        if kind in VARINTS:  # a long with a logical type (timestamp-millis)
            return _varint_sizes(_ints(array))
        return self._bytes(array)  # a string with a logical type (uuid)

    def _bytes(self, array: pa.Array) -> np.ndarray:
        lengths = _ints(pc.binary_length(array))
        if lengths.size and int(lengths.max()) > self.max_string:
            self.ok = False
        return _varint_sizes(lengths) + lengths

    def _blocks(self, array: pa.Array, avro: dict[str, Any], at: Placed | None) -> np.ndarray:
        """An array or map in one block: its count, its items, the closing zero (an empty one is the zero alone).

        With ``at``, the items are checked at their own starts (their sizes first give those starts).
        """
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        counts = offsets[1:] - offsets[:-1]
        if counts.size and int(counts.max()) > self.max_items:
            self.ok = False
        if avro["type"] == "map":
            keys = self._bytes(array.keys)
            values, value_type = array.items, avro["values"]
            items = keys + self._size(values, value_type)
        else:
            values, value_type = array.values, avro["items"]
            items = self._size(values, value_type)
        summed = np.concatenate(([0], np.cumsum(items)))
        if at is not None:
            starts, exists = at
            parent = np.repeat(np.arange(len(counts)), counts)  # for each item in use, the row it belongs to
            used = np.arange(offsets[0], offsets[-1]) if len(offsets) else np.zeros(0, dtype=np.int64)
            item_starts = np.zeros(len(items), dtype=np.int64)
            item_starts[used] = (starts + _varint_sizes(counts))[parent] + summed[used] - summed[offsets[:-1][parent]]
            inside = np.zeros(len(items), dtype=bool)
            inside[used] = exists[parent]
            self._size(values, value_type, (item_starts + keys if avro["type"] == "map" else item_starts, inside))
        inside_sizes = summed[offsets[1:]] - summed[offsets[:-1]]
        return np.where(counts == 0, 1, _varint_sizes(counts) + inside_sizes + 1)
