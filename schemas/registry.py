"""The versioned Avro schemas in ``schemas/avro/<Record>/<version>.avsc``.

Every version ever released stays in the folder: the newest is the writer
schema, and all of them are kept so that a record written with an old
version is still resolved (Avro schema resolution) to the newest.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from .exceptions import SchemaError

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "SchemaStore",
    "SchemaVersion",
    "default_store",
    "strip_uuid",
]

DEFAULT_SCHEMA_DIR = Path(__file__).parent / "avro"
NAMESPACE = "preflog.v1"


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of one record schema."""

    name: str
    version: int
    raw: dict[str, Any]
    parsed: Any
    reader: Any
    canonical: str
    fingerprint: bytes

    @property
    def full_name(self) -> str:
        return f"{self.raw.get('namespace', NAMESPACE)}.{self.name}"


def strip_uuid(node: Any) -> Any:
    """Drop ``logicalType: uuid`` so decoded ids stay ``str``.

    Logical types are not part of the Parsing Canonical Form, so the
    fingerprint and schema resolution are unchanged.
    """
    if isinstance(node, dict):
        out = {k: strip_uuid(v) for k, v in node.items()}
        if out.get("logicalType") == "uuid":
            del out["logicalType"]
        return out
    if isinstance(node, list):
        return [strip_uuid(v) for v in node]
    return node


def _load(path: Path, name: str) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text())
        parsed = fastavro.parse_schema(copy.deepcopy(raw))
        reader = fastavro.parse_schema(strip_uuid(raw))
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"{path}: not a valid Avro schema: {exc}") from exc
    if raw.get("name") != name:
        raise SchemaError(f"{path}: declares record {raw.get('name')!r}, expected {name!r} (the folder name)")
    canonical = to_parsing_canonical_form(parsed)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaVersion(name, int(path.stem), raw, parsed, reader, canonical, fp)


class SchemaStore:
    """All versions of all record schemas under one folder."""

    def __init__(self, root: Path = DEFAULT_SCHEMA_DIR) -> None:
        self.root = root
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        if not root.is_dir():
            raise SchemaError(f"schema folder {root} does not exist")
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = sorted(folder.glob("*.avsc"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
            if any(not p.stem.isdigit() for p in files):
                raise SchemaError(f"{folder}: schema files must be named <version>.avsc, e.g. 1.avsc")
            versions = [_load(p, folder.name) for p in files]
            if versions:
                self._versions[folder.name] = versions
            for v in versions:
                self._by_fingerprint[v.fingerprint] = v

    @property
    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[SchemaVersion]:
        try:
            return self._versions[name]
        except KeyError:
            raise SchemaError(f"no schema named {name!r} in {self.root}; known: {', '.join(self.names)}") from None

    def latest(self, name: str) -> SchemaVersion:
        return self.versions(name)[-1]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)


@cache
def default_store() -> SchemaStore:
    """The schemas shipped with this build of preflog."""
    return SchemaStore()
