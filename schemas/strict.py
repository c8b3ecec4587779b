"""A strict pre-pass over an Avro body, run before fastavro decodes it.

fastavro's reader trusts its input more than a consumer of untrusted topics
can: an ``int`` wider than 32 bits decodes to a Python int that no writer
will take back, a varint longer than 64 bits silently wraps, and a negative
enum or union index picks a symbol or branch by Python's negative indexing,
so a corrupt record decodes to a *valid-looking* one. A huge array count of
zero-size items makes it build that list in memory.

:func:`compile_checker` turns a parsed writer schema into one Python function
(generated source, primitives inlined, compiled once per schema version) that
walks the body and raises :class:`BodyError` naming the field (``candidates[2].text``;
map entries as ``metadata[0].key`` and ``metadata[0].value``) for:

* an ``int`` outside int32 or a ``long`` (or block count, length) outside int64;
* an enum index outside the symbol list, a union branch index out of range,
  a boolean byte other than 0 or 1;
* a negative length, or a string/bytes longer than ``max_string_bytes``;
* arrays and maps with more than ``max_items`` entries, or with more entries
  than bytes left to hold them;
* with ``thorough``, also a string that is not UTF-8 and a
  ``timestamp-millis``/``-micros`` outside the years 1..9999. fastavro itself
  refuses both, without naming the field; the codec compiles the thorough
  variant only to name it after fastavro failed, so the fast path stays fast.

The walker does not build values; fastavro still does the decoding.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["BodyError", "Checker", "cached_checker", "compile_checker"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
#: what Python's datetime can hold (years 1..9999), which fastavro needs to decode these logical types
TIMESTAMP_RANGE = {
    "timestamp-millis": (-62_135_596_800_000, 253_402_300_799_999),
    "timestamp-micros": (-62_135_596_800_000_000, 253_402_300_799_999_999),
}

#: ``checker(body, max_string_bytes, max_items)`` returns the number of bytes the body's record used
Checker = Callable[[bytes, int, int], int]


class BodyError(Exception):
    """The body breaks the Avro encoding at ``field``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field or 'record'}: {problem}")
        self.field = field
        self.problem = problem


def _fail(template: str, indices: tuple[int, ...], problem: str) -> None:
    raise BodyError(template % indices if indices else template, problem)


def _varint(data: bytes, p: int, bits: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """The slow path of a zigzag varint (more than one byte, or a negative length): value and next position."""
    raw = shift = 0
    limit = 5 if bits == 32 else 10
    for n in range(limit):
        b = data[p + n]
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            value = (raw >> 1) ^ -(raw & 1)
            low, high = INT32 if bits == 32 else INT64
            if not low <= value <= high:
                _fail(template, indices, f"{value} does not fit an Avro {'int' if bits == 32 else 'long'}")
            return value, p + n + 1
    kind = "int (32 bits)" if bits == 32 else "long (64 bits)"
    _fail(template, indices, f"varint longer than {limit} bytes does not fit an Avro {kind}")
    raise AssertionError("unreachable")


_VARINT_END = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]")


def _skip(data: bytes, p: int, bits: int, template: str, indices: tuple[int, ...]) -> int:
    """The position after a varint of three bytes or more whose value is not needed, checking it fits.

    Zigzag maps int32 onto 0..2**32-1 and int64 onto 0..2**64-1, so the width
    alone decides: at most 5 bytes with a last byte <= 0x0F for an int, at most
    10 with a last byte <= 0x01 for a long.
    """
    found = _VARINT_END.match(data, p)
    if found is None:
        if len(data) - p < 10:
            raise IndexError("body ends inside a varint")
        _, end = _varint(data, p, bits, template, indices)  # raises: longer than 10 bytes
        return end
    end = found.end()
    width, last = end - p, data[end - 1]
    if (bits == 32 and (width > 5 or (width == 5 and last > 0x0F))) or (width == 10 and last > 0x01):
        _varint(data, p, bits, template, indices)  # raises with the value in the message
    return end


def _index(data: bytes, p: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """An enum or union index read on the slow path, as its zigzag code (``2 * index`` when >= 0)."""
    value, p = _varint(data, p, 32, template, indices)
    return (value << 1) ^ (value >> 31), p


def _length(data: bytes, p: int, limit: int, what: str, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """A string/bytes length on the slow path: the position after the value."""
    n, p = _varint(data, p, 64, template, indices)
    if n < 0:
        _fail(template, indices, f"negative {what} length {n}")
    if n > limit:
        _fail(template, indices, f"{what} of {n} bytes is longer than the limit of {limit}")
    return n, p


def _block(data: bytes, p: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """An array/map block count on the slow path: the number of entries (0 ends the value) and next position."""
    count, p = _varint(data, p, 64, template, indices)
    if count < 0:  # a negative count is followed by the block's size in bytes
        count = -count
        size, p = _varint(data, p, 64, template, indices)
        if size < 0:
            _fail(template, indices, f"negative block size {size}")
    return count, p


class _Gen:
    """Generates the checker's source for one writer schema.

    One-byte varints (values -64..63) take an inlined fast path; anything
    longer goes through the helpers above, which also build the messages.
    """

    def __init__(self, named: dict[str, Any], thorough: bool) -> None:
        self.named = named
        self.thorough = thorough
        self.lines: list[str] = []
        self.depth = 0  # loop nesting, for loop variable names
        self.inlining: list[str] = []

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def where(self, path: str) -> str:
        """The path template and its index tuple as source text: ``'a[%d].b', (i0,)``."""
        loops = ", ".join(f"i{d}" for d in range(self.depth))
        return f"{path.lstrip('.')!r}, ({loops},)" if loops else f"{path.lstrip('.')!r}, ()"

    def number(self, ind: int, bits: int, path: str) -> None:
        self.emit(ind, "if data[p] < 128:")
        self.emit(ind + 1, "p += 1")
        self.emit(ind, "elif data[p + 1] < 128:")  # two bytes: 14 bits, fits int and long
        self.emit(ind + 1, "p += 2")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"p = _skip(data, p, {bits}, {self.where(path)})")

    def string(self, ind: int, path: str, what: str = "string") -> None:
        where = self.where(path)
        if self.thorough:
            self.emit(ind, f"n, p = _length(data, p, max_string, {what!r}, {where})")
            if what == "string":
                self.emit(ind, "try:")
                self.emit(ind + 1, "data[p:p + n].decode()")
                self.emit(ind, "except UnicodeDecodeError as exc:")
                problem = "f'is not valid UTF-8 ({exc.reason} at byte {exc.start})'"
                self.emit(ind + 1, f"_fail({where}, {problem})")
            self.emit(ind, "p += n")
            return
        self.emit(ind, "b = data[p]")
        self.emit(ind, "if not b & 129:")  # one byte, >= 0: a length of 0..63, within any limit
        self.emit(ind + 1, "p += (b >> 1) + 1")
        self.emit(ind, "elif not b & 1 and data[p + 1] < 128:")  # two bytes, >= 0: 64..8191
        self.emit(ind + 1, "n = ((b & 127) | (data[p + 1] << 7)) >> 1")
        self.emit(ind + 1, "if n > max_string:")
        self.emit(ind + 2, f"_length(data, p, max_string, {what!r}, {where})")
        self.emit(ind + 1, "p += n + 2")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"n, p = _length(data, p, max_string, {what!r}, {where})")
        self.emit(ind + 1, "p += n")

    def index(self, ind: int, path: str) -> None:
        """Leaves the zigzag code of an enum or union index in ``b``: 2 * index for index >= 0."""
        self.emit(ind, "b = data[p]")
        self.emit(ind, "if b < 128:")
        self.emit(ind + 1, "p += 1")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"b, p = _index(data, p, {self.where(path)})")

    def node(self, ind: int, schema: Any, path: str) -> None:
        if isinstance(schema, list):
            self.union(ind, schema, path)
            return
        if isinstance(schema, str):
            schema = self.named.get(schema, {"type": schema})
        kind = schema["type"]
        if isinstance(kind, (dict, list)) or kind in self.named:
            self.node(ind, kind, path)
        elif kind == "null":
            self.emit(ind, "pass")
        elif kind == "boolean":
            self.emit(ind, "if data[p] > 1:")
            self.emit(ind + 1, f"_fail({self.where(path)}, f'boolean byte {{data[p]}} is not 0 or 1')")
            self.emit(ind, "p += 1")
        elif kind == "long" and self.thorough and schema.get("logicalType") in TIMESTAMP_RANGE:
            low, high = TIMESTAMP_RANGE[schema["logicalType"]]
            self.emit(ind, f"v, p = _varint(data, p, 64, {self.where(path)})")
            self.emit(ind, f"if not {low} <= v <= {high}:")
            problem = f"{{v}} is outside the years 1..9999 a {schema['logicalType']} can hold"
            self.emit(ind + 1, f"_fail({self.where(path)}, f{problem!r})")
        elif kind in ("int", "long"):
            self.number(ind, 32 if kind == "int" else 64, path)
        elif kind in ("float", "double"):
            self.emit(ind, f"p += {4 if kind == 'float' else 8}")
        elif kind in ("string", "bytes"):
            self.string(ind, path, kind)
        elif kind == "fixed":
            self.emit(ind, f"p += {int(schema['size'])}")
        elif kind == "enum":
            self.enum(ind, schema, path)
        elif kind in ("record", "error"):
            self.record(ind, schema, path)
        elif kind in ("array", "map"):
            self.blocks(ind, schema, path)
        else:
            raise ValueError(f"{path.lstrip('.') or 'schema'}: unknown Avro type {kind!r}")

    def enum(self, ind: int, schema: Any, path: str) -> None:
        symbols = len(schema["symbols"])
        self.index(ind, path)
        self.emit(ind, f"if b & 1 or b >= {2 * symbols}:")
        problem = f"enum index {{(b >> 1) ^ -(b & 1)}} is not a symbol of {schema['name']} (0..{symbols - 1})"
        self.emit(ind + 1, f"_fail({self.where(path)}, f{problem!r})")

    def union(self, ind: int, branches: list[Any], path: str) -> None:
        self.index(ind, path)
        for n, branch in enumerate(branches):
            self.emit(ind, f"{'if' if n == 0 else 'elif'} b == {2 * n}:")
            self.node(ind + 1, branch, path)
        self.emit(ind, "else:")
        problem = f"union branch index {{(b >> 1) ^ -(b & 1)}} out of range (0..{len(branches) - 1})"
        self.emit(ind + 1, f"_fail({self.where(path)}, f{problem!r})")

    def record(self, ind: int, schema: Any, path: str) -> None:
        name = schema["name"]
        if name in self.inlining:
            raise RecursionError(name)
        self.inlining.append(name)
        for field in schema["fields"]:
            self.node(ind, field["type"], f"{path}.{field['name']}")
        self.inlining.pop()
        if not schema["fields"]:
            self.emit(ind, "pass")

    def blocks(self, ind: int, schema: Any, path: str) -> None:
        d, where = self.depth, self.where(path)
        total = f"t{d}"
        self.emit(ind, f"{total} = 0")
        self.emit(ind, "while True:")
        self.emit(ind + 1, "b = data[p]")
        self.emit(ind + 1, "if not b & 129:")
        self.emit(ind + 2, "p += 1")
        self.emit(ind + 2, "c = b >> 1")
        self.emit(ind + 1, "else:")
        self.emit(ind + 2, f"c, p = _block(data, p, {where})")
        self.emit(ind + 1, "if not c:")
        self.emit(ind + 2, "break")
        self.emit(ind + 1, f"{total} += c")
        self.emit(ind + 1, f"if {total} > max_items:")
        self.emit(ind + 2, f"_fail({where}, f'{{{total}}} entries, more than the limit of {{max_items}}')")
        is_map = schema["type"] == "map"
        if is_map or self.min_size(schema["items"]) > 0:
            self.emit(ind + 1, "if c > end - p:")
            self.emit(ind + 2, f"_fail({where}, f'{{c}} entries claimed but only {{end - p}} bytes left')")
        self.emit(ind + 1, f"for i{d} in range({total} - c, {total}):")
        self.depth += 1
        if is_map:
            self.string(ind + 2, f"{path}[%d].key")
            self.node(ind + 2, schema["values"], f"{path}[%d].value")
        else:
            self.node(ind + 2, schema["items"], f"{path}[%d]")
        self.depth -= 1

    def min_size(self, schema: Any, seen: tuple[str, ...] = ()) -> int:
        """The fewest bytes one value of ``schema`` can take (0 for null, empty records, fixed(0))."""
        if isinstance(schema, list):
            return 1
        if isinstance(schema, str):
            if schema not in self.named:
                return 0 if schema == "null" else 1
            if schema in seen:
                return 1
            seen, schema = (*seen, schema), self.named[schema]
        kind = schema["type"]
        if isinstance(kind, (dict, list)) or kind in self.named:
            return self.min_size(kind, seen)
        if kind == "null":
            return 0
        if kind == "fixed":
            return int(schema["size"])
        if kind in ("record", "error"):
            return sum(self.min_size(f["type"], seen) for f in schema["fields"])
        return 1


def compile_checker(schema: Any, thorough: bool = False) -> Checker:
    """A function checking bodies written with the parsed ``schema`` (see the module docstring).

    Raises:
        ValueError: ``schema`` uses a type this walker does not know.
    """
    named = dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    gen = _Gen(named, thorough)
    gen.emit(0, "def check(data, max_string, max_items):")
    gen.emit(1, "p = 0")
    gen.emit(1, "end = len(data)")
    try:
        gen.node(1, schema, "")
    except RecursionError:
        raise ValueError("recursive Avro schemas are not supported by the strict decoder") from None
    gen.emit(1, "return p")
    scope: dict[str, Any] = {
        "_varint": _varint,
        "_skip": _skip,
        "_index": _index,
        "_length": _length,
        "_block": _block,
        "_fail": _fail,
    }
    exec(compile("\n".join(gen.lines), f"<strict checker {_name(schema)}>", "exec"), scope)
    checker: Checker = scope["check"]
    return checker


_CACHE: OrderedDict[tuple[int, bool], tuple[Any, Checker]] = OrderedDict()
_CACHE_SIZE = 64


def cached_checker(schema: Any, thorough: bool = False) -> Checker:
    """:func:`compile_checker`, compiled once per parsed schema object (about 5 ms each) for the process."""
    key = (id(schema), thorough)
    found = _CACHE.get(key)
    if found is None or found[0] is not schema:  # the schema object itself is kept, so its id stays its own
        found = _CACHE[key] = (schema, compile_checker(schema, thorough))
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found[1]


def _name(schema: Any) -> str:
    return str(schema.get("name", "schema")) if isinstance(schema, dict) else "schema"
