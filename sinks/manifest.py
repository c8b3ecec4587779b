"""A manifest per data file: what it holds and how to check it.

Manifests live in their own tree, ``_manifests/<data file path>.json``, so
the table folders hold nothing but Parquet (any reader can glob them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MANIFEST_DIR", "Manifest", "manifest_path"]

MANIFEST_DIR = "_manifests"


def manifest_path(relative: str) -> str:
    """Where the manifest of data file ``relative`` lives."""
    return f"{MANIFEST_DIR}/{relative}.json"


@dataclass(frozen=True)
class Manifest:
    """Rows, offset range, checksum and schema of one data file.

    ``incarnation`` numbers the topic's incarnations seen by this log (0 first);
    ``topic_id`` is the broker's id of that incarnation (empty where the broker
    has none); ``last_record`` identifies the record at ``last_offset``
    (``<timestamp ms>:<sha256 of its value>``), so a restarted writer can tell
    whether the topic it resumes is the one the files came from. Manifests
    written before these fields existed read with the defaults.
    """

    file: str
    table: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int
    duplicates_skipped: int
    sha256: str
    schema: str
    schema_fingerprint: str
    written_at: str
    incarnation: int = 0
    topic_id: str = ""
    last_record: str = ""

    @property
    def key(self) -> tuple[str, int, int]:
        """(topic, partition, incarnation): the offset sequence this file belongs to."""
        return (self.topic, self.partition, self.incarnation)

    @staticmethod
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        fields: dict[str, Any] = json.loads(data)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in fields.items() if k in known})
