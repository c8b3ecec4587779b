"""The contract itself: every schema parses, documents every field, and shares named types consistently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from preflog.schemas.registry import DEFAULT_SCHEMA_DIR, SchemaStore, default_store
from preflog.schemas.tables import RECORD_TYPES


def _named_types(node: Any, found: dict[str, Any], namespace: str) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            ns = node.get("namespace", namespace)
            full = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
            if full in found:
                assert found[full] == node, f"{full} is defined differently in two schema files"
            found[full] = node
            namespace = ns
        for value in node.values():
            _named_types(value, found, namespace)
    elif isinstance(node, list):
        for value in node:
            _named_types(value, found, namespace)


def _fields(node: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for f in node.get("fields", []) if node.get("type") == "record" else []:
            out.append((f"{node['name']}.{f['name']}", f))
        for value in node.values():
            out += _fields(value)
    elif isinstance(node, list):
        for value in node:
            out += _fields(value)
    return out


def test_every_record_type_is_shipped() -> None:
    assert default_store().names == sorted(RECORD_TYPES)


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_every_field_and_record_is_documented(name: str) -> None:
    for version in default_store().versions(name):
        assert version.raw.get("doc"), f"{name} v{version.version} has no doc"
        undocumented = [path for path, f in _fields(version.raw) if not f.get("doc")]
        assert undocumented == []


def test_named_types_are_identical_across_files() -> None:
    """Across the newest version of every record; older versions are history and may define their types otherwise."""
    found: dict[str, Any] = {}
    for folder in sorted(p for p in DEFAULT_SCHEMA_DIR.iterdir() if p.is_dir()):
        newest = max(folder.glob("*.avsc"), key=lambda p: int(p.stem))
        _named_types(json.loads(newest.read_text()), found, "preflog.v1")
    assert {"preflog.v1.Model", "preflog.v1.SourceOffset", "preflog.v1.FeedbackSource"} <= set(found)


def test_fingerprints_are_unique() -> None:
    store = default_store()
    fps = [v.fingerprint for n in store.names for v in store.versions(n)]
    assert len(fps) == len(set(fps))


def test_bad_schema_folder_is_named(tmp_path) -> None:
    (tmp_path / "InferenceEvent").mkdir()
    (tmp_path / "InferenceEvent" / "1.avsc").write_text('{"type": "record", "name": "Other", "fields": []}')
    with pytest.raises(Exception, match="declares record 'Other', expected 'InferenceEvent'"):
        SchemaStore(tmp_path)


def test_unmatched_record_v2_reads_v1_data_and_adds_no_pairs() -> None:
    """BACKWARD: the newest UnmatchedRecord (v2, reason NO_PAIRS) reads what v1 wrote; its enum has a default."""
    import datetime as dt
    import io

    import fastavro

    store = default_store()
    v1, v2 = store.versions("UnmatchedRecord")[:2]
    assert v2 is store.latest("UnmatchedRecord")
    record = {
        "reason": "LATE",
        "detail": "d",
        "record_type": "FeedbackEvent",
        "request_id": "00000000-0000-0000-0000-000000000001",
        "feedback_id": None,
        "event_time": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
        "stream_time": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
        "value": b"x",
        "source_offset": {"topic": "t", "partition": 0, "offset": 1},
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, record)
    buf.seek(0)
    read: Any = fastavro.schemaless_reader(buf, v1.parsed, v2.reader)
    assert read["reason"] == "LATE"
    enum = v2.raw["fields"][0]["type"]
    assert "NO_PAIRS" in enum["symbols"] and enum["default"] in enum["symbols"]
    assert enum["symbols"][: len(v1.raw["fields"][0]["type"]["symbols"])] == v1.raw["fields"][0]["type"]["symbols"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v2.parsed, {**record, "reason": "NO_PAIRS"})
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, v2.parsed, v2.reader)
    assert read["reason"] == "NO_PAIRS"
