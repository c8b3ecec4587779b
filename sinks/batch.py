"""The files one batch of records becomes: Parquet per partition folder, each with its manifest.

Shared by the live writer (offsets are Kafka offsets of the output topic) and
by replay (offsets are positions in the replay's own output sequence).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from preflog.schemas.registry import SchemaVersion

from .arrow import arrow_schema
from .columns import DictRows, Rows
from .decode import BatchDecoder
from .manifest import MANIFEST_DIR, Manifest, manifest_path
from .naming import file_name
from .parquet import encode

__all__ = ["BATCH_KEY", "EMPTY_DIR", "Origin", "TableFormat", "batch_files", "batch_of"]

EMPTY_DIR = "_empty"
BATCH_KEY = b"preflog.batch"


class TableFormat:
    """One table's Avro schema version and the Arrow schema its files are written with."""

    def __init__(self, table: str, schema: SchemaVersion) -> None:
        self.table = table
        self.schema = schema
        self.arrow: pa.Schema = arrow_schema(schema.raw, {"preflog.schema_fingerprint": schema.fingerprint.hex()})

    @cached_property
    def decoder(self) -> BatchDecoder:
        """Decodes batches of this table's framed records (compiled on first use)."""
        return BatchDecoder(self.schema, self.arrow)

    def prepare(self) -> BatchDecoder:
        """Builds the decoder now (polars loads, the decoders compile), so the first batch does not wait for it."""
        return self.decoder

    def manifest(
        self,
        relative: str,
        topic: str,
        partition: int,
        first: int,
        last: int,
        rows: int = 0,
        skipped: int = 0,
        sha256: str = "",
        origin: Origin | None = None,
    ) -> Manifest:
        """The manifest of one data file (``relative`` empty for a range without rows)."""
        origin = origin or Origin()
        return Manifest(
            relative,
            self.table,
            topic,
            partition,
            first,
            last,
            rows,
            skipped,
            sha256,
            self.schema.name,
            self.schema.fingerprint.hex(),
            datetime.now(timezone.utc).isoformat(),
            origin.incarnation,
            origin.topic_id,
            origin.last_record,
        )


@dataclass(frozen=True)
class Origin:
    """Which incarnation of the topic a batch came from, and the identity of its last record."""

    incarnation: int = 0
    topic_id: str = ""
    last_record: str = ""


def batch_files(
    fmt: TableFormat,
    records: Iterable[dict[str, Any]] | Rows,
    topic: str,
    partition: int,
    first: int,
    last: int,
    partition_by: list[str],
    skipped: int = 0,
    origin: Origin | None = None,
) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of the data files and manifests for records ``first..last`` of a partition.

    With no records (all were duplicates) the range is still recorded, as a
    manifest without a file under ``_manifests/<table>/_empty/``. The data
    files come first, and each records its batch (range, number of parts,
    origin) in its Parquet metadata: a writer that died between them can tell
    a complete batch (whose missing manifests it writes again) from one to redo.
    """
    rows = records if isinstance(records, Rows) else DictRows(list(records))
    groups: dict[str, list[int]] = {}
    for i, directory in enumerate(rows.dirs(fmt.table, partition_by)):
        groups.setdefault(directory, []).append(i)
    origin = origin or Origin()
    name = file_name(topic, partition, first, last, origin.incarnation)
    if not groups:
        manifest = fmt.manifest("", topic, partition, first, last, skipped=skipped, origin=origin)
        return [(manifest_path(f"{fmt.table}/{EMPTY_DIR}/{name}"), manifest.to_json())]
    out: list[tuple[str, bytes]] = []
    about = json.dumps(
        {"first": first, "last": last, "parts": len(groups), "skipped": skipped, **asdict(origin)}, sort_keys=True
    )
    schema = fmt.arrow.with_metadata({**(fmt.arrow.metadata or {}), BATCH_KEY: about.encode()})
    for directory, indices in sorted(groups.items()):
        part = rows if len(indices) == len(rows) else rows.take(indices)
        data = encode(part.table(schema))
        relative = f"{directory}/{name}"
        manifest = fmt.manifest(
            relative,
            topic,
            partition,
            first,
            last,
            rows=len(indices),
            skipped=skipped,
            sha256=Manifest.digest(data),
            origin=origin,
        )
        out += [(relative, data), (manifest_path(relative), manifest.to_json())]
    return sorted(out, key=lambda f: f[0].startswith(f"{MANIFEST_DIR}/"))  # every data file before any manifest


def batch_of(data: bytes) -> dict[str, Any] | None:
    """What :func:`batch_files` recorded in a data file about its batch (None for files written before)."""
    metadata = pq.ParquetFile(io.BytesIO(data)).schema_arrow.metadata or {}
    about = metadata.get(BATCH_KEY)
    return dict(json.loads(about)) if about else None
