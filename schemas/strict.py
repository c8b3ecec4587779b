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

The walker does not build values; fastavro still does the decoding. The
generator is :mod:`.strict_source`; the slow paths it calls (varints longer
than two bytes) are :mod:`.strict_varints`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .strict_source import CheckerSource
from .strict_varints import RUNTIME, BodyError

__all__ = ["BodyError", "Checker", "cached_checker", "compile_checker"]

#: ``checker(body, max_string_bytes, max_items)`` returns the number of bytes the body's record used
Checker = Callable[[bytes, int, int], int]


def compile_checker(schema: Any, thorough: bool = False) -> Checker:
    """A function checking bodies written with the parsed ``schema`` (see the module docstring).

    Args:
        schema: A writer schema as ``fastavro.parse_schema`` returns it.
        thorough: Also check UTF-8 and timestamp ranges (to name the field fastavro refused).

    Returns:
        ``check(body, max_string_bytes, max_items)``, which returns the bytes the record used and
        raises :class:`BodyError` naming the field.

    Raises:
        ValueError: ``schema`` uses a type this walker does not know.
    """
    named = dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    gen = CheckerSource(named, thorough)
    gen.emit(0, "def check(data, max_string, max_items):")
    gen.emit(1, "p = 0")
    gen.emit(1, "end = len(data)")
    try:
        gen.node(1, schema, "")
    except RecursionError:
        raise ValueError("recursive Avro schemas are not supported by the strict decoder") from None
    gen.emit(1, "return p")
    scope: dict[str, Any] = dict(RUNTIME)
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
