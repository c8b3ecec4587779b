"""Avro schemas as Arrow schemas, and decoded records as Arrow tables.

Timestamps become ``timestamp[ms, tz=UTC]`` (not nanoseconds), enums
dictionary-encoded strings, maps ``map<string, string>``; every Avro ``doc``
is kept as Arrow field metadata (``doc``), so it lands in the Parquet schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

__all__ = ["arrow_schema", "to_table"]

PRIMITIVES = {
    "string": pa.string(),
    "bytes": pa.binary(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}


def _type(avro: Any, named: dict[str, Any]) -> tuple[pa.DataType, bool]:
    """Arrow type of an Avro type, and whether it is nullable."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"only [null, T] unions are supported, got {avro}")
        return _type(branches[0], named)[0], True
    if isinstance(avro, str):
        if avro in PRIMITIVES:
            return PRIMITIVES[avro], False
        return _type(named[avro.split(".")[-1]], named)[0], False
    kind = avro["type"]
    if avro.get("logicalType") == "timestamp-millis":
        return pa.timestamp("ms", tz="UTC"), False
    if kind == "record":
        named[avro["name"]] = avro
        return pa.struct([_field(f, named) for f in avro["fields"]]), False
    if kind == "enum":
        named[avro["name"]] = avro
        return pa.dictionary(pa.int32(), pa.string()), False
    if kind == "array":
        return pa.list_(_type(avro["items"], named)[0]), False
    if kind == "map":
        return pa.map_(pa.string(), _type(avro["values"], named)[0]), False
    return _type(kind, named)


def _field(avro_field: dict[str, Any], named: dict[str, Any]) -> pa.Field:
    arrow, nullable = _type(avro_field["type"], named)
    metadata = {"doc": avro_field["doc"]} if avro_field.get("doc") else None
    return pa.field(avro_field["name"], arrow, nullable=nullable, metadata=metadata)


def arrow_schema(avro: dict[str, Any], extra_metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of an Avro record schema (docs kept as field metadata)."""
    named: dict[str, Any] = {}
    fields = [_field(f, named) for f in avro["fields"]]
    metadata = {"avro.name": f"{avro.get('namespace', '')}.{avro['name']}", "doc": avro.get("doc", "")}
    return pa.schema(fields, metadata={**metadata, **(extra_metadata or {})})


def to_table(records: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Decoded Avro records as an Arrow table of ``schema``."""
    return pa.Table.from_pylist(list(records), schema=schema)
