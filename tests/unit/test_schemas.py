"""The contract itself: every schema parses, documents every field, and shares named types consistently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from preflog.schemas.registry import DEFAULT_SCHEMA_DIR, RECORD_TYPES, SchemaStore, default_store


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
    found: dict[str, Any] = {}
    for path in sorted(DEFAULT_SCHEMA_DIR.glob("*/*.avsc")):
        _named_types(json.loads(path.read_text()), found, "preflog.v1")
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
