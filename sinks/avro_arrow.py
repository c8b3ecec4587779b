"""Compiled decoding of a batch: framed Avro values in, one Arrow table out, decoded in Rust.

An Avro object container file's block is a record count, a byte length and
the records' bodies back to back. A batch of values framed the default way
(single-object encoding: ``C3 01`` and the schema's fingerprint) is such a
block for a record whose first field is a 10-byte ``fixed`` (the frame) and
whose other fields are the schema's own. :class:`ArrowReader` puts the batch's
values behind an in-memory file header and lets ``polars-avro`` (``arrow-avro``,
compiled) decode them into Arrow columns.

It takes a batch only when it is sure the result is what the codec would give
(``schemas/codec.py``), and returns None otherwise, so the caller decodes it
the way it did before:

* arrow-avro decodes the block (it refuses text that is not UTF-8, ints wider
  than their type, enum indices out of range). Only the first batch is asked
  for: arrow-avro 0.x loops for ever on a block with bytes left after its last
  record, which a value with trailing bytes would leave;
* every value starts with this schema version's framing and is within the
  record limit;
* every row's canonical size is its value's length, union indices and booleans
  are canonical bytes, strings and items within the limits (:mod:`.avro_sizes`):
  so every record was read from its own value, and from all of it;
* timestamps lie within the years 1..9999 (fastavro refuses others) and no
  map repeats a key (fastavro keeps the last one, arrow the both).

The table comes with arrow-avro's types (large strings, ``uint32``
dictionaries); :class:`.arrow_rows.ArrowRows` casts it to the file schema.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from preflog.schemas.registry import SchemaVersion, strip_uuid
from preflog.schemas.varint import avro_long

from .avro_columns import TIMESTAMP_MS
from .avro_sizes import Sizes

__all__ = ["FRAME", "ArrowReader"]

FRAME = "__preflog_frame"
SYNC = bytes(range(16))


def _file_header(schema: dict[str, Any]) -> bytes:
    """The header of an object container file of ``schema``, codec null, sync marker :data:`SYNC`."""
    meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
    out = bytearray(b"Obj\x01") + avro_long(len(meta))
    for key, value in meta.items():
        out += avro_long(len(key)) + key.encode() + avro_long(len(value)) + value
    return bytes(out + b"\x00" + SYNC)


def _leaf(table: pa.Table, path: tuple[str, ...]) -> pa.Array:
    """The array at ``path`` (a top-level column, then struct fields), nulls where a parent is null."""
    array = table.column(path[0]).combine_chunks()
    for name in path[1:]:
        array = pc.struct_field(array, name)
    return array


class ArrowReader:
    """Decodes batches of one schema version's framed values in compiled code (see the module docstring).

    Args:
        schema: The schema version the values are written with (the table's newest).
        header: The framing every value starts with (``C3 01`` and the fingerprint).

    Raises:
        ValueError: the schema uses a type this reader does not decode.
    """

    def __init__(self, schema: SchemaVersion, header: bytes) -> None:
        raw = strip_uuid(schema.raw)
        frame = {"name": FRAME, "type": {"type": "fixed", "name": "PreflogFrame", "size": len(header)}}
        framed = {**raw, "fields": [frame, *raw["fields"]]}
        self.sizes = Sizes(framed)  # raises ValueError for a type it does not check
        self.file_header = _file_header(framed)
        self.header = header
        from polars_avro._avro_rs import AvroSource  # polars-avro's reader of Arrow batches (pinned: constraints.txt)

        self.source = AvroSource  # imported here, where the sink and replay start: polars loads in about 0.3 s
        pa.scalar(0)  # pyarrow imports pandas at its first scalar (about 0.2 s): here too, not in a batch

    def read(self, values: Sequence[bytes], max_record: int, max_string: int, max_items: int) -> pa.Table | None:
        """The values' records as one table with arrow-avro's types, or None when not sure of every one."""
        if not values:
            return None
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if int(lengths.max()) - len(self.header) > max_record:
            return None
        total = int(lengths.sum())
        prefix = self.file_header + avro_long(len(values)) + avro_long(total)
        block = b"".join([prefix, *values, SYNC])  # the batch's one copy: the values stay where Sizes reads them
        batch = self._decode(block, len(values))
        if batch is None or batch.num_rows != len(values):
            return None
        if not self._framed(batch.column(0)):
            return None
        data = np.frombuffer(block, dtype=np.uint8, count=total, offset=len(prefix))
        if not self.sizes.check(batch, lengths, data, max_string, max_items):
            return None
        table = pa.Table.from_batches([batch]).drop_columns([FRAME])
        return table if self._plausible(table) else None

    def _decode(self, block: bytes, rows: int) -> pa.RecordBatch | None:
        """The first ``rows`` records of an in-memory object container file, or None when arrow-avro refuses them.

        Only one batch is ever asked for: arrow-avro 0.x loops for ever on a block with bytes left after its
        records, which asking for the next batch would reach; :class:`.avro_sizes.Sizes` checks what the batch
        was read from.
        """
        source = self.source([lambda: contextlib.nullcontext(io.BytesIO(block))], False, False)
        try:
            return pa.record_batch(next(source.batch_iter(rows, None)))
        except Exception:  # a body arrow-avro refuses (or StopIteration): the codec decides about the batch
            return None

    def _framed(self, frames: pa.Array) -> bool:
        """Whether every value starts with this schema version's header (compared as bytes: no pandas import)."""
        size = len(self.header)
        raw = np.frombuffer(frames.buffers()[1], dtype=np.uint8)[
            frames.offset * size : (frames.offset + len(frames)) * size
        ]
        return bool((raw.reshape(-1, size) == np.frombuffer(self.header, dtype=np.uint8)).all())

    def _plausible(self, table: pa.Table) -> bool:
        """Timestamps fastavro can hold, and maps without a repeated key."""
        low, high = TIMESTAMP_MS
        for path in self.sizes.timestamps:
            millis = _leaf(table, path).cast(pa.int64())
            if millis.null_count < len(millis):
                bounds = pc.min_max(millis)
                if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
                    return False
        for path in self.sizes.maps:
            entries = _leaf(table, path)
            keys = pa.ListArray.from_arrays(entries.offsets, entries.keys)  # each row's keys
            if len(keys.values):
                rows = pc.list_parent_indices(keys)
                found = pa.table({"row": rows, "key": pc.list_flatten(keys)}).group_by(["row", "key"]).aggregate([])
                if found.num_rows != len(rows):
                    return False
        return True
