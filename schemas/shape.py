r"""Does a Python value fit an Avro schema? Every mismatch, as ``field.path: problem``.

fastavro's own ``validate`` answers with the record type's name
(``preflog.v1.Candidate.text is <7> ...``), accepts what its writer then
cannot encode (lone surrogates in text) and ignores unknown keys, so a typo in
an optional field name silently drops the value. :func:`shape_problems` walks
the parsed schema and the value together and reports, with the path a caller
wrote (``candidates[1].text``, ``metadata.region``):

* a wrong type (``bool`` is not an ``int``; an ``int`` is a fine ``double``);
* an ``int`` outside int32, a ``long`` outside int64;
* a NaN or infinite ``float``/``double`` (valid Avro, but never a valid score,
  temperature or rating in preflog's events);
* text that is not encodable as UTF-8 (lone surrogates such as ``"\\ud800"``);
* a missing field without a default, and a key that is not a field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["shape_problems", "show"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()


def shape_problems(value: Any, schema: Any) -> list[str]:
    """Every way ``value`` does not fit the parsed ``schema`` (fastavro.parse_schema output)."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    out: list[str] = []
    _check(value, schema, "", named, out)
    return out


def _label(path: str) -> str:
    return path or "record"


def show(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters; huge ints by their size (their repr may not even exist)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"{'-' if value < 0 else ''}a {value.bit_length()}-bit integer"
    try:
        text = repr(value)
    except Exception:  # a caller's object whose repr fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(value: Any) -> str:
    return f"{type(value).__name__} {show(value)}"


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    while True:
        if isinstance(schema, str):
            schema = named.get(schema, {"type": schema})
        elif isinstance(schema, dict) and (isinstance(schema["type"], (dict, list)) or schema["type"] in named):
            schema = schema["type"]
        else:
            return schema


def _fits(value: Any, schema: Any, named: Mapping[str, Any]) -> bool:
    """Whether ``value`` has the Python type of ``schema`` (for choosing a union branch)."""
    if isinstance(schema, list):
        return any(_fits(value, b, named) for b in schema)
    kind = _resolve(schema, named)["type"]
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, datetime)
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("string", "enum"):
        return isinstance(value, str)
    if kind in ("bytes", "fixed"):
        return isinstance(value, (bytes, bytearray))
    if kind in ("record", "error", "map"):
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))
    return False


def _type_name(schema: Any, named: Mapping[str, Any]) -> str:
    if isinstance(schema, list):
        return " or ".join(_type_name(b, named) for b in schema)
    resolved = _resolve(schema, named)
    kind = resolved["type"]
    names = {"string": "text", "record": "an object", "map": "an object of text", "array": "a list"}
    if kind == "enum":
        return "one of " + ", ".join(resolved["symbols"])
    return names.get(kind, kind)


def _check(value: Any, schema: Any, path: str, named: Mapping[str, Any], out: list[str]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            if _fits(value, branch, named):
                _check(value, branch, path, named, out)
                return
        out.append(f"{_label(path)}: expected {_type_name(schema, named)}, got {_got(value)}")
        return
    resolved = _resolve(schema, named)
    if not _fits(value, resolved, named):
        out.append(f"{_label(path)}: expected {_type_name(resolved, named)}, got {_got(value)}")
        return
    kind = resolved["type"]
    if kind in ("int", "long") and not isinstance(value, datetime):
        low, high = INT32 if kind == "int" else INT64
        if not low <= value <= high:
            out.append(f"{_label(path)}: {show(value)} does not fit an Avro {kind} ({low}..{high})")
    elif kind in ("float", "double"):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            out.append(f"{_label(path)}: {show(value)} is not a finite number")
    elif kind == "string":
        _text(value, path, out)
    elif kind == "enum" and value not in resolved["symbols"]:
        out.append(f"{_label(path)}: {show(value)} is not one of {', '.join(resolved['symbols'])}")
    elif kind == "fixed" and len(value) != resolved["size"]:
        out.append(f"{_label(path)}: {len(value)} bytes, expected exactly {resolved['size']}")
    elif kind in ("record", "error"):
        _record(value, resolved, path, named, out)
    elif kind == "array":
        for i, item in enumerate(value):
            _check(item, resolved["items"], f"{path}[{i}]", named, out)
    elif kind == "map":
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(f"{_label(path)}: key {show(key)} is not text")
                continue
            _text(key, f"{path}.{key}", out)
            _check(item, resolved["values"], f"{path}.{key}", named, out)


def _text(value: str, path: str, out: list[str]) -> None:
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        out.append(f"{_label(path)}: not valid text ({exc.reason} at position {exc.start})")


def _record(value: Mapping[str, Any], schema: Any, path: str, named: Mapping[str, Any], out: list[str]) -> None:
    prefix = f"{path}." if path else ""
    fields = schema["fields"]
    known = {f["name"] for f in fields}
    for key in value:
        if key not in known:
            name = str(schema["name"]).rsplit(".", 1)[-1]
            label = key if isinstance(key, str) else show(key)
            out.append(f"{prefix}{label}: not a field of {name} (its fields: {', '.join(f['name'] for f in fields)})")
    for field in fields:
        item = value.get(field["name"], _MISSING)
        if item is _MISSING:
            if "default" not in field:
                out.append(f"{prefix}{field['name']}: missing")
            continue
        _check(item, field["type"], prefix + field["name"], named, out)
