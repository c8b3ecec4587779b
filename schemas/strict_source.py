"""The code generator behind :func:`~preflog.schemas.strict.compile_checker`.

:class:`CheckerSource` walks a parsed writer schema and emits the lines of
one Python function, ``check(data, max_string, max_items)``, that skips over
a body the way fastavro would read it, with every primitive inlined and each
check next to the bytes it looks at. The slow paths it calls are
:mod:`.strict_varints`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TIMESTAMP_RANGE", "CheckerSource"]

#: what Python's datetime can hold (years 1..9999), which fastavro needs to decode these logical types
TIMESTAMP_RANGE = {
    "timestamp-millis": (-62_135_596_800_000, 253_402_300_799_999),
    "timestamp-micros": (-62_135_596_800_000_000, 253_402_300_799_999_999),
}


class CheckerSource:
    """Generates the checker's source for one writer schema.

    One-byte varints (values -64..63) take an inlined fast path; anything
    longer goes through the functions of :mod:`.strict_varints`, which also
    build the messages.

    Args:
        named: The parsed schema's named types (``__named_schemas``).
        thorough: Also check UTF-8 and the range of timestamps (see :mod:`.strict`).
    """

    def __init__(self, named: dict[str, Any], thorough: bool) -> None:
        self.named = named
        self.thorough = thorough
        self.lines: list[str] = []
        self.depth = 0  # loop nesting, for loop variable names
        self.inlining: list[str] = []

    def emit(self, indent: int, line: str) -> None:
        """Appends ``line`` at ``indent`` levels of four spaces."""
        self.lines.append("    " * indent + line)

    def where(self, path: str) -> str:
        """The path template and its index tuple as source text: ``'a[%d].b', (i0,)``."""
        loops = ", ".join(f"i{d}" for d in range(self.depth))
        return f"{path.lstrip('.')!r}, ({loops},)" if loops else f"{path.lstrip('.')!r}, ()"

    def number(self, ind: int, bits: int, path: str) -> None:
        """Skips an int (``bits`` 32) or long (64), checking on the slow path that it fits."""
        self.emit(ind, "if data[p] < 128:")
        self.emit(ind + 1, "p += 1")
        self.emit(ind, "elif data[p + 1] < 128:")  # two bytes: 14 bits, fits int and long
        self.emit(ind + 1, "p += 2")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"p = _skip(data, p, {bits}, {self.where(path)})")

    def string(self, ind: int, path: str, what: str = "string") -> None:
        """Skips a string or bytes value (``what``), checking its length (and, thorough, its UTF-8)."""
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
        """Emits the checks of one value of ``schema`` at ``path``.

        Raises:
            ValueError: an Avro type this walker does not know.
            RecursionError: a record that contains itself.
        """
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
        """Checks an enum index against the symbol list."""
        symbols = len(schema["symbols"])
        self.index(ind, path)
        self.emit(ind, f"if b & 1 or b >= {2 * symbols}:")
        problem = f"enum index {{(b >> 1) ^ -(b & 1)}} is not a symbol of {schema['name']} (0..{symbols - 1})"
        self.emit(ind + 1, f"_fail({self.where(path)}, f{problem!r})")

    def union(self, ind: int, branches: list[Any], path: str) -> None:
        """Checks a union branch index, then the value of the branch it picks."""
        self.index(ind, path)
        for n, branch in enumerate(branches):
            self.emit(ind, f"{'if' if n == 0 else 'elif'} b == {2 * n}:")
            self.node(ind + 1, branch, path)
        self.emit(ind, "else:")
        problem = f"union branch index {{(b >> 1) ^ -(b & 1)}} out of range (0..{len(branches) - 1})"
        self.emit(ind + 1, f"_fail({self.where(path)}, f{problem!r})")

    def record(self, ind: int, schema: Any, path: str) -> None:
        """Checks the fields of a record in order (inlined; a recursive record raises RecursionError)."""
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
        """Checks the blocks of an array or map: counts, limits, and each entry."""
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
