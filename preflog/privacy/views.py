"""DuckDB views of audit-log rows with their sealed fields opened by a :class:`~.keyring.Keyring`."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .envelope import key_sql
from .keyring import PERSONAL, SEALED_FIELDS, Keyring, is_struct_list

__all__ = ["opened_view"]


def _open_sql(column: str, type_: pa.DataType) -> str:
    """DuckDB expression opening the sealed values of ``column``."""
    if pa.types.is_map(type_):
        return (f"map_from_entries(list_transform(map_entries({column}), "
                f"lambda e: struct_pack(key := e.key, value := preflog_open(e.value))))")  # fmt: skip
    if is_struct_list(type_):
        return _list_sql(column, type_, 0)
    return f"preflog_open({column})"


def _list_sql(column: str, type_: pa.DataType, depth: int) -> str:
    """DuckDB expression opening the sealed fields of each struct of a list column (nested lists too)."""
    var, struct = f"m{depth}", type_.value_type
    parts = []
    for i in range(struct.num_fields):
        name, child = struct.field(i).name, struct.field(i).type
        value = f"{var}.{name}"
        if name in SEALED_FIELDS and (pa.types.is_string(child) or pa.types.is_large_string(child)):
            value = f"preflog_open({value})"
        elif is_struct_list(child):
            value = _list_sql(value, child, depth + 1)
        parts.append(f'"{name}" := {value}')
    return f"list_transform({column}, lambda {var}: struct_pack({', '.join(parts)}))"


def opened_view(con: Any, name: str, source: str, table: str, schema: pa.Schema, keyring: Keyring) -> None:
    """Create the view ``name`` over the query ``source`` (rows of audit-log ``table``) with its fields opened.

    Adds ``subject``, ``erased`` (the prompt's data key was erased: its sealed fields read as null) and
    ``subject_consent`` (the consent its data key records; null when unstated or not sealed).
    """
    try:
        keyring.register(con)
    except Exception as exc:  # already registered on this connection
        if "already" not in str(exc).lower():
            raise
    personal = [c for c in PERSONAL.get(table, ()) if c in schema.names]
    opens = ", ".join(f"{_open_sql(c, schema.field(c).type)} AS {c}" for c in personal)
    replace = f" REPLACE ({opens})" if opens else ""
    stated = "v.inference_metadata['preflog.subject']" if "inference_metadata" in schema.names else "NULL"
    key = key_sql("v.prompt") if "prompt" in schema.names else "NULL"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name} AS
            SELECT * EXCLUDE (__erased, __subject, __consent){replace},
                   __subject AS subject, coalesce(__erased, false) AS erased, __consent AS subject_consent
            FROM (SELECT v.*, k.erased AS __erased, coalesce({stated}, k.subject) AS __subject,
                         k.consent AS __consent
                  FROM ({source}) v LEFT JOIN preflog_keys k ON k.key_id = {key})"""
    )
