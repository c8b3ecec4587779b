"""The generator of the sink's column decoder: Avro bodies straight into per-column Python lists.

fastavro builds a dict per record (and a datetime per timestamp, a str per
string) that ``pyarrow.Table.from_pylist`` then takes apart again; for the
sink that was most of its time. :func:`compile_columns` walks the table's Avro schema beside
its Arrow schema (:mod:`.arrow`) and generates one Python function (primitives
inlined, compiled once per schema) that reads a body and appends each leaf
value to its own list (strings as their UTF-8 bytes, checked the way Python
decodes them, timestamps as milliseconds); :mod:`.columns` turns the lists
into Arrow arrays.

The decoder accepts only bodies it is sure of and raises :class:`Reject` for
anything else, so the caller hands those to the codec, which decodes them or
names what is wrong. It is stricter than the codec's pre-pass and fastavro
together: lengths, counts, ints, enum and union indices, booleans, UTF-8 and
timestamp ranges are checked, varints must be canonical, a map may not repeat
a key (fastavro would keep the last one), and a body must end where its
record does. Only the types :func:`~.arrow.arrow_schema` maps are known.
"""

from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa

from .column_plan import Leaf, Nest, Node, Plan, Struct

__all__ = ["TIMESTAMP_MS", "Reject", "compile_columns"]

#: the milliseconds Python's datetime can hold (years 1..9999), as fastavro needs them
TIMESTAMP_MS = (-62_135_596_800_000, 253_402_300_799_999)


class Reject(Exception):
    """A body the column decoder does not take; the codec decides about it."""


def _varint(data: bytes, p: int) -> tuple[int, int]:
    """A zigzag varint of two bytes or more at ``p``: its value and the position after it (canonical only).

    Up to eight bytes (56 bits: timestamps, most longs) are read as one integer and their 7-bit groups
    packed with masks; longer ones byte by byte.
    """
    chunk = data[p : p + 8]
    x = int.from_bytes(chunk, "little")
    stops = ~x & 0x8080808080808080 & ((1 << 8 * len(chunk)) - 1)
    if stops:
        k = (stops & -stops).bit_length() >> 3  # bytes up to and including the first without the high bit
        x &= (1 << 8 * k) - 1
        if k > 1 and not x >> 8 * (k - 1):  # a padded (non-canonical) varint
            raise Reject
        raw = x & 0x7F
        for i in range(1, k):
            raw |= (x >> i) & (0x7F << 7 * i)
        return (raw >> 1) ^ -(raw & 1), p + k
    raw = shift = 0
    for n in range(10):
        b = data[p + n]
        raw |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b == 0 or raw >= 1 << 64:  # a padded (non-canonical) varint, or wider than a long
                raise Reject
            return (raw >> 1) ^ -(raw & 1), p + n + 1
    raise Reject


RUNTIME: dict[str, Any] = {
    "_varint": _varint,
    "Reject": Reject,
    "_float": struct.Struct("<f").unpack_from,
    "_double": struct.Struct("<d").unpack_from,
}


class _Source:
    """Emits the decoder's lines and numbers its slots (one list per leaf, null-flag set and offsets)."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.slots = 0
        self.offsets: list[int] = []
        self.depth = 0
        self.consts: dict[str, Any] = {}

    def emit(self, ind: int, line: str) -> None:
        self.lines.append("    " * ind + line)

    def slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def long(self, ind: int, var: str) -> None:
        """Reads a zigzag long into ``var``."""
        self.emit(ind, f"{var} = data[p]")
        self.emit(ind, "p += 1")
        self.emit(ind, f"if {var} < 128:")
        self.emit(ind + 1, f"{var} = ({var} >> 1) ^ -({var} & 1)")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{var}, p = _varint(data, p - 1)")

    def length(self, ind: int) -> None:
        """Reads a string or bytes length into ``n`` (one or two bytes inline) and its end into ``q``."""
        self.emit(ind, "n = data[p]")
        self.emit(ind, "if n < 128:")
        self.emit(ind + 1, "p += 1")
        self.emit(ind + 1, "if n & 1:")  # negative
        self.emit(ind + 2, "raise Reject")
        self.emit(ind + 1, "n >>= 1")
        self.emit(ind, "elif 0 < data[p + 1] < 128 and not n & 1:")  # two canonical bytes, >= 0
        self.emit(ind + 1, "n = ((n & 127) | (data[p + 1] << 7)) >> 1")
        self.emit(ind + 1, "p += 2")
        self.emit(ind, "else:")
        self.emit(ind + 1, "n, p = _varint(data, p)")
        self.emit(ind + 1, "if n < 0:")
        self.emit(ind + 2, "raise Reject")
        self.emit(ind, "q = p + n")
        self.emit(ind, "if q > end or n > max_string:")
        self.emit(ind + 1, "raise Reject")

    def resolve(self, avro: Any) -> Any:
        """A named type's definition, or the type itself."""
        if isinstance(avro, str):
            return self.named.get(avro, {"type": avro})
        if isinstance(avro, dict) and isinstance(avro["type"], (dict, list)):
            return self.resolve(avro["type"])
        if isinstance(avro, dict) and avro["type"] in self.named:
            return self.named[avro["type"]]
        return avro

    def node(self, ind: int, avro: Any, arrow: pa.DataType, nullable: bool) -> Node:
        """Emits the reading of one value; ``nullable`` when a union may leave it null."""
        if isinstance(avro, list):
            return self.union(ind, avro, arrow)
        avro = self.resolve(avro)
        if isinstance(avro, list):
            return self.union(ind, avro, arrow)
        kind = avro["type"]
        logical = avro.get("logicalType")
        if logical is not None and not (logical == "timestamp-millis" and kind == "long"):
            raise ValueError(f"logical type {logical} is not supported by the column decoder")
        if kind == "record":
            children = tuple(
                self.node(ind, f["type"], arrow.field(i).type, False) for i, f in enumerate(avro["fields"])
            )
            return Struct(arrow, children, self.slot() if nullable else None)
        if kind in ("array", "map"):
            return self.nest(ind, avro, arrow, nullable)
        slot = self.slot()
        if kind == "enum":
            symbols = f"SYM{slot}"
            self.consts[symbols] = tuple(avro["symbols"])
            self.emit(ind, "v = data[p]")  # a one-byte zigzag index (symbols 0..63), else the codec decides
            self.emit(ind, "p += 1")
            self.emit(ind, f"if v & 1 or v >= {2 * len(avro['symbols'])}:")
            self.emit(ind + 1, "raise Reject")
            self.emit(ind, f"a{slot}({symbols}[v >> 1])")
        elif kind in ("string", "bytes"):
            self.length(ind)
            self.emit(ind, "v = data[p:q]")
            if kind == "string":  # kept as bytes (Arrow takes them as they are): checked as Python decodes them
                self.emit(ind, "if not v.isascii():")
                self.emit(ind + 1, "v.decode()")
            self.emit(ind, f"a{slot}(v)")
            self.emit(ind, "p = q")
        elif kind in ("int", "long"):
            self.long(ind, "v")
            if kind == "int":
                self.emit(ind, "if not -2147483648 <= v <= 2147483647:")
                self.emit(ind + 1, "raise Reject")
            elif logical is not None:
                self.emit(ind, f"if not {TIMESTAMP_MS[0]} <= v <= {TIMESTAMP_MS[1]}:")
                self.emit(ind + 1, "raise Reject")
            self.emit(ind, f"a{slot}(v)")
        elif kind in ("float", "double"):
            size = 4 if kind == "float" else 8
            self.emit(ind, f"a{slot}(_{kind}(data, p)[0])")
            self.emit(ind, f"p += {size}")
        elif kind == "boolean":
            self.emit(ind, "v = data[p]")
            self.emit(ind, "p += 1")
            self.emit(ind, "if v > 1:")
            self.emit(ind + 1, "raise Reject")
            self.emit(ind, f"a{slot}(v == 1)")
        else:
            raise ValueError(f"Avro type {kind!r} is not supported by the column decoder")
        return Leaf(slot, arrow)

    def union(self, ind: int, branches: list[Any], arrow: pa.DataType) -> Node:
        """A ``[null, T]`` union (either order): T's reading, or a placeholder in each of its lists."""
        values = [b for b in branches if b != "null"]
        if len(branches) != 2 or len(values) != 1:
            raise ValueError(f"only [null, T] unions are supported by the column decoder, got {branches}")
        null = branches.index("null")
        self.emit(ind, "u = data[p]")  # the zigzag code of the branch index: 2 * index
        self.emit(ind, "p += 1")
        self.emit(ind, f"if u == {2 * (1 - null)}:")
        mark = len(self.lines)
        node = self.node(ind + 1, values[0], arrow, True)
        self.emit(ind, f"elif u == {2 * null}:")
        self.placeholder(ind + 1, node, True)
        self.emit(ind, "else:")
        self.emit(ind + 1, "raise Reject")
        if isinstance(node, (Struct, Nest)) and node.mask is not None:  # not null: its flag goes first
            self.lines.insert(mark, "    " * (ind + 1) + f"a{node.mask}(False)")
        return node

    def placeholder(self, ind: int, node: Node, null: bool) -> None:
        """Appends a null (``null``), or an empty value under a null parent, to every list of ``node``."""
        if isinstance(node, Leaf):
            self.emit(ind, f"a{node.slot}(None)")
            return
        if node.mask is not None:
            self.emit(ind, f"a{node.mask}({null})")
        if isinstance(node, Struct):
            for child in node.children:
                self.placeholder(ind, child, False)
        else:
            self.emit(ind, f"a{node.offsets}(s{node.offsets}[-1])")

    def nest(self, ind: int, avro: dict[str, Any], arrow: pa.DataType, nullable: bool) -> Nest:
        """An array or map: its blocks, each entry's lists, then the offset after the last entry."""
        d = self.depth
        self.depth += 1
        offsets = self.slot()
        self.offsets.append(offsets)
        is_map = avro["type"] == "map"
        self.emit(ind, f"t{d} = 0")
        if is_map:
            self.emit(ind, f"k{d} = []")
        self.long(ind, f"c{d}")
        self.emit(ind, f"while c{d}:")
        self.emit(ind + 1, f"t{d} += c{d}")
        self.emit(ind + 1, f"if c{d} < 0 or t{d} > max_items or c{d} > end - p:")
        self.emit(ind + 2, "raise Reject")
        self.emit(ind + 1, f"for _ in range(c{d}):")
        if is_map:
            key = self.node(ind + 2, "string", arrow.key_type, False)
            assert isinstance(key, Leaf)
            self.emit(ind + 2, f"k{d}.append(s{key.slot}[-1])")
            children: tuple[Node, ...] = (key, self.node(ind + 2, avro["values"], arrow.item_type, False))
        else:
            children = (self.node(ind + 2, avro["items"], arrow.value_type, False),)
        self.long(ind + 1, f"c{d}")
        if is_map:
            self.emit(ind, f"if t{d} > 1 and len(set(k{d})) != t{d}:")
            self.emit(ind + 1, "raise Reject")
        self.emit(ind, f"a{offsets}(s{offsets}[-1] + t{d})")
        self.depth -= 1
        return Nest(arrow, children, offsets, self.slot() if nullable else None)


def compile_columns(reader: dict[str, Any], arrow: pa.Schema) -> Plan:
    """The column decoder of bodies written with the parsed Avro ``reader`` schema, for the ``arrow`` schema.

    Args:
        reader: The record schema as the codec reads it (``SchemaVersion.reader``).
        arrow: Its Arrow schema (:func:`.arrow.arrow_schema`).

    Raises:
        ValueError: the schema uses a type the column decoder does not know.
    """
    gen = _Source(dict(reader.get("__named_schemas", {})))
    gen.emit(1, "def decode(data, p, max_string, max_items):")
    gen.emit(2, "end = len(data)")
    columns = tuple(gen.node(2, f["type"], arrow.field(i).type, False) for i, f in enumerate(reader["fields"]))
    gen.emit(2, "if p != end:")
    gen.emit(3, "raise Reject")
    gen.emit(1, "return decode")
    names = [f"s{i}" for i in range(gen.slots)]
    head = [f"def bind({', '.join(names)}):"] + [f"    a{i} = s{i}.append" for i in range(gen.slots)]
    source = "\n".join(head + gen.lines)
    scope: dict[str, Any] = {**RUNTIME, **gen.consts}
    exec(compile(source, f"<column decoder {reader.get('name', 'record')}>", "exec"), scope)
    return Plan(columns, gen.slots, tuple(gen.offsets), scope["bind"], source)
