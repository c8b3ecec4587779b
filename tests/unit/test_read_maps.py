"""The datasets-ready view of the audit log: every map as a list of {key, value} structs, nothing else changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import preflog
from preflog.sinks.read import without_maps

from .dataset_helpers import PAIRS, write_log

MAP = pa.map_(pa.string(), pa.string())
maps = st.one_of(st.none(), st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), max_size=3))


def _has_map(t: pa.DataType) -> bool:
    if pa.types.is_map(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_map(t.field(i).type) for i in range(t.num_fields))
    return pa.types.is_list(t) and _has_map(t.value_type)


def _plain(value: Any) -> Any:
    """A map value as to_pylist gives it (a list of pairs) written as {key, value} dicts, the plain way."""
    return None if value is None else [{"key": k, "value": v} for k, v in value]


@given(st.lists(maps, min_size=1, max_size=12), st.integers(0, 11), st.integers(0, 12))
@settings(max_examples=200, deadline=None)
def test_maps_become_key_value_lists_in_columns_structs_and_slices(values: list[Any], start: int, length: int) -> None:
    column = pa.array(values, MAP)
    table = pa.table({"m": column, "s": pa.StructArray.from_arrays([column], names=["m"])})
    table = table.slice(min(start, len(values)), length)
    out = without_maps(table)
    assert not any(_has_map(f.type) for f in out.schema)
    expected = [{"m": _plain(r["m"]), "s": {"m": _plain(r["s"]["m"])}} for r in table.to_pylist()]
    assert out.to_pylist() == expected


def test_read_pairs_has_a_view_without_maps_and_the_same_rows(tmp_path: Path) -> None:
    url = write_log(tmp_path, PAIRS)
    plain = preflog.read_pairs(url)
    view = preflog.read_pairs(url, maps_as_lists=True)
    assert any(_has_map(f.type) for f in plain.schema) and not any(_has_map(f.type) for f in view.schema)
    assert view.column("pair_id").to_pylist() == plain.column("pair_id").to_pylist()
    first, again = plain.slice(0, 1).to_pylist()[0], view.slice(0, 1).to_pylist()[0]
    assert again["inference_metadata"] == _plain(first["inference_metadata"])
    assert again["sampling"]["extra"] == _plain(first["sampling"]["extra"])
