"""A fast path for decoding Avro bodies whose writer schema is the reader schema.

:func:`compile_reader` turns a parsed schema into one generated Python
function that decodes a body into the same record ``fastavro.schemaless_reader``
returns, about twice as fast, and also returns where each top-level field
starts (and, for a top-level array of records, where each item's fields
start), so the join can copy encoded fields into its outputs.

It accepts only what the checked path (the strict pre-pass of :mod:`.strict`,
then fastavro) accepts, and only canonical encodings (minimal varints, each
array or map in one block): the encoding fastavro writes for the decoded
values, byte for byte. Anything else, including a body the checked path would
refuse, raises :class:`Fallback`, and the codec decodes that body the checked
way, with the same result or error as before. A schema with a type or logical
type this reader does not know gets no fast reader (:func:`compile_reader`
raises ValueError).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["Fallback", "Marks", "Reader", "compile_reader"]

#: top-level field starts plus the end, and per top-level array-of-records field, per item, its field starts and end
Marks = tuple[tuple[int, ...], dict[str, list[tuple[int, ...]]]]
#: ``reader(body, max_string_bytes, max_items)`` returns the record and its marks
Reader = Callable[[bytes, int, int], tuple[dict[str, Any], Marks]]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # as fastavro's logical readers compute timestamps
_LOGICAL = (("long", "timestamp-millis"), ("long", "timestamp-micros"))
_LIMITS = {32: (5, -(1 << 31), (1 << 31) - 1), 64: (10, -(1 << 63), (1 << 63) - 1)}


class Fallback(Exception):
    """The body is not one the fast path takes: decode it the checked way."""


def _varint(data: bytes, p: int, bits: int) -> tuple[int, int]:
    """A varint of two bytes or more: minimal, within int32 (``bits`` 32) or int64, else :class:`Fallback`."""
    width, low, high = _LIMITS[bits]
    raw = shift = 0
    for n in range(width):
        b = data[p + n]
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            value = (raw >> 1) ^ -(raw & 1)
            if not b or not low <= value <= high:  # a last byte of 0 is a non-minimal encoding
                raise Fallback
            return value, p + n + 1
    raise Fallback


def _fail() -> None:
    raise Fallback


_RUNTIME: dict[str, Any] = {
    "_varint": _varint,
    "_F": Fallback,
    "_fail": _fail,
    "_D": struct.Struct("<d").unpack_from,
    "_FL": struct.Struct("<f").unpack_from,
    "_EPOCH": _EPOCH,
    "_td": timedelta,
}


class _Source:
    """Generates a reader's source (see :func:`compile_reader`)."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.count = 0
        self.inlining: list[str] = []

    def emit(self, ind: int, line: str) -> None:
        self.lines.append("    " * ind + line)

    def var(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def number(self, ind: int, target: str, bits: int) -> None:
        """A zigzag varint: one and two bytes inline (14 bits fit an int), longer ones in :func:`_varint`."""
        self.emit(ind, "b = data[p]")
        self.emit(ind, "if b < 128:")
        self.emit(ind + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(ind + 1, "p += 1")
        self.emit(ind, "elif 0 < data[p + 1] < 128:")  # a last byte of 0 is not minimal: _varint falls back
        self.emit(ind + 1, "b = (b & 127) | (data[p + 1] << 7)")
        self.emit(ind + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(ind + 1, "p += 2")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{target}, p = _varint(data, p, {bits})")

    def index(self, ind: int, target: str, size: int) -> None:
        """A union branch or enum index in 0..size-1 (one byte when canonical and size <= 64)."""
        self.emit(ind, f"{target} = data[p]")
        self.emit(ind, f"if {target} & 1 or {target} >= {min(2 * size, 128)}:")
        self.emit(ind + 1, "raise _F")
        self.emit(ind, f"{target} >>= 1")
        self.emit(ind, "p += 1")

    def string(self, ind: int, target: str, kind: str) -> None:
        n, e = self.var("n"), self.var("e")
        self.number(ind, n, 64)
        self.emit(ind, f"{e} = p + {n}")
        self.emit(ind, f"if {n} < 0 or {n} > max_string or {e} > end:")
        self.emit(ind + 1, "raise _F")
        self.emit(ind, f"{target} = data[p:{e}]" + (".decode()" if kind == "string" else ""))
        self.emit(ind, f"p = {e}")

    def node(self, ind: int, schema: Any, target: str) -> None:
        if isinstance(schema, list):
            branch = self.var("u")
            self.index(ind, branch, len(schema))
            for n, sub in enumerate(schema):
                self.emit(ind, f"{'if' if n == 0 else 'elif'} {branch} == {n}:")
                self.node(ind + 1, sub, target)
            self.emit(ind, "else:")
            self.emit(ind + 1, "raise _F")
            return
        if isinstance(schema, str):
            schema = self.named.get(schema, {"type": schema})
        kind = schema["type"]
        logical = schema.get("logicalType")
        if isinstance(kind, (dict, list)) or kind in self.named:
            self.node(ind, kind, target)
        elif logical is not None and (kind, logical) not in _LOGICAL:
            raise ValueError(f"no fast reader for logical type {logical!r}")
        elif kind == "null":
            self.emit(ind, f"{target} = None")
        elif kind == "boolean":
            self.emit(ind, "if data[p] > 1:")
            self.emit(ind + 1, "raise _F")
            self.emit(ind, f"{target} = data[p] == 1")
            self.emit(ind, "p += 1")
        elif kind in ("int", "long"):
            self.number(ind, target, 32 if kind == "int" else 64)
            if logical is not None:
                scale = " * 1000" if logical == "timestamp-millis" else ""
                self.emit(ind, f"{target} = _EPOCH + _td(microseconds={target}{scale})")
        elif kind in ("float", "double"):
            self.emit(ind, f"{target} = {'_FL' if kind == 'float' else '_D'}(data, p)[0]")
            self.emit(ind, f"p += {4 if kind == 'float' else 8}")
        elif kind in ("string", "bytes"):
            self.string(ind, target, kind)
        elif kind == "fixed":
            self.emit(ind, f"if p + {int(schema['size'])} > end:")
            self.emit(ind + 1, "raise _F")
            self.emit(ind, f"{target} = data[p:p + {int(schema['size'])}]")
            self.emit(ind, f"p += {int(schema['size'])}")
        elif kind == "enum":
            index = self.var("i")
            self.index(ind, index, len(schema["symbols"]))
            self.emit(ind, f"{target} = {tuple(schema['symbols'])!r}[{index}]")
        elif kind in ("record", "error"):
            self.record(ind, schema, target)
        elif kind in ("array", "map"):
            self.blocks(ind, schema, target)
        else:
            raise ValueError(f"no fast reader for Avro type {kind!r}")

    def record(self, ind: int, schema: Any, target: str, marks: str | None = None) -> None:
        """A record as a dict in field order; with ``marks``, also a tuple of its field starts and end there."""
        name = schema["name"]
        if name in self.inlining:
            raise ValueError(f"no fast reader for the recursive record {name}")
        self.inlining.append(name)
        values, starts = [], []
        for field in schema["fields"]:
            value = self.var()
            if marks is not None:
                starts.append(self.var("m"))
                self.emit(ind, f"{starts[-1]} = p")
            self.node(ind, field["type"], value)
            values.append(f"{field['name']!r}: {value}")
        self.inlining.pop()
        self.emit(ind, f"{target} = {{{', '.join(values)}}}")
        if marks is not None:
            self.emit(ind, f"{marks} = ({''.join(s + ', ' for s in starts)}p)")

    def blocks(self, ind: int, schema: Any, target: str, item_marks: str | None = None) -> None:
        """An array or map in one block (a canonical encoding), its count checked before any item is read."""
        is_map, count, item = schema["type"] == "map", self.var("c"), self.var()
        self.emit(ind, f"{target} = {{}}" if is_map else f"{target} = []")
        self.emit(ind, "if data[p]:")
        self.number(ind + 1, count, 64)
        self.emit(ind + 1, f"if {count} <= 0 or {count} > max_items or {count} > end - p:")
        self.emit(ind + 2, "raise _F")
        self.emit(ind + 1, f"for _ in range({count}):")
        if is_map:
            key = self.var("k")
            self.string(ind + 2, key, "string")
            self.node(ind + 2, schema["values"], item)
            self.emit(ind + 2, f"{target}[{key}] = {item}")
        elif item_marks is not None:
            marks = self.var("q")
            self.record(ind + 2, self._resolve(schema["items"]), item, marks)
            self.emit(ind + 2, f"{item_marks}.append({marks})")
            self.emit(ind + 2, f"{target}.append({item})")
        else:
            self.node(ind + 2, schema["items"], item)
            self.emit(ind + 2, f"{target}.append({item})")
        self.emit(ind + 1, "if data[p]:")  # a second block: not canonical
        self.emit(ind + 2, "raise _F")
        self.emit(ind, "p += 1")

    def _resolve(self, schema: Any) -> Any:
        """``schema`` with named references and nested type objects followed ({} for a union)."""
        for _ in range(100):
            if isinstance(schema, list):
                return {}
            if isinstance(schema, str):
                if schema not in self.named:
                    return {"type": schema}
                schema = self.named[schema]
            elif isinstance(schema["type"], (dict, list)) or schema["type"] in self.named:
                schema = schema["type"]
            else:
                return schema
        raise ValueError("named types refer to each other in a cycle")

    def top(self, schema: Any) -> None:
        """The top-level record, with the marks of its fields and of its arrays of records' items."""
        starts, arrays = [], []
        values = []
        for field in schema["fields"]:
            starts.append(self.var("m"))
            self.emit(1, f"{starts[-1]} = p")
            value = self.var()
            kind = field["type"]
            resolved = self._resolve(kind)
            if resolved.get("type") == "array" and self._resolve(resolved["items"]).get("type") == "record":
                arrays.append(f"{field['name']!r}: {value}_marks")
                self.emit(1, f"{value}_marks = []")
                self.blocks(1, resolved, value, f"{value}_marks")
            else:
                self.node(1, kind, value)
            values.append(f"{field['name']!r}: {value}")
        self.emit(1, "if p != end:")
        self.emit(2, "raise _F")
        marks = f"({''.join(s + ', ' for s in starts)}p), {{{', '.join(arrays)}}}"
        self.emit(1, f"return {{{', '.join(values)}}}, ({marks})")


def compile_reader(schema: Any) -> Reader:
    """The fast reader of bodies written with the parsed record ``schema`` (see the module docstring).

    Raises:
        ValueError: ``schema`` is not a record, or uses a type or logical type the fast path does not know.
    """
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        raise ValueError("the fast reader decodes records only")
    gen = _Source(dict(schema.get("__named_schemas", {})))
    gen.emit(0, "def read(data, max_string, max_items):")
    gen.emit(1, "p = 0")
    gen.emit(1, "end = len(data)")
    gen.inlining.append(schema["name"])
    gen.top(schema)
    scope = dict(_RUNTIME)
    exec(compile("\n".join(gen.lines), f"<fast reader {schema['name']}>", "exec"), scope)
    reader: Reader = scope["read"]
    return reader
