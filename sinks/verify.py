"""``preflog verify``: walk the audit log and report what is missing, altered or repeated.

Checks: every manifest's file exists and matches its sha256 and row count;
every data file has a manifest; per topic-partition the offset ranges are
contiguous (a gap means records never reached the log), each incarnation of a
topic on its own; no id appears twice.

Memory: one file's bytes at a time (each is read once, for its sha256 and its
ids), the ids counted on disk (:class:`~preflog.sinks.ids.IdCounts`, bounded by
``memory``), and a few names and offsets per file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from preflog.schemas.tables import TABLES

from .ids import IdCounts, file_ids
from .manifest import MANIFEST_DIR, Manifest
from .naming import parse_file_name
from .storage import Storage

__all__ = ["Report", "verify"]


@dataclass
class Report:
    """What verify found."""

    files: int = 0
    rows: int = 0
    missing_files: list[str] = field(default_factory=list)
    checksum_mismatches: list[str] = field(default_factory=list)
    without_manifest: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    duplicate_ids: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_files
            or self.checksum_mismatches
            or self.without_manifest
            or self.gaps
            or self.overlaps
            or self.duplicate_ids
        )


def verify(storage: Storage, on_file: Callable[[str], None] | None = None, memory: str | int | None = None) -> Report:
    """Check the whole audit log under ``storage``; ``memory`` bounds the count of repeated ids (it spills beyond)."""
    report = Report()
    with IdCounts(memory) as ids:
        ranges = _check_files(storage, report, ids, on_file)
    _check_ranges(report, ranges)
    return report


Ranges = dict[tuple[str, str, int, int], set[tuple[int, int]]]


def _check_files(storage: Storage, report: Report, ids: IdCounts, on_file: Callable[[str], None] | None) -> Ranges:
    """Each table's files against their manifests and its repeated ids; the offset ranges of every file."""
    ranges: Ranges = defaultdict(set)
    for table in TABLES:
        data_files = {p for p in storage.list(table) if p.endswith(".parquet")}
        manifests = [p for p in storage.list(f"{MANIFEST_DIR}/{table}") if p.endswith(".json")]
        described = set()
        ids.clear()
        for path in manifests:
            manifest = Manifest.from_json(storage.read(path))
            ranges[(table, *manifest.key)].add((manifest.first_offset, manifest.last_offset))
            if not manifest.file:
                continue  # a range whose records were all duplicates
            described.add(manifest.file)
            if on_file:
                on_file(manifest.file)
            if manifest.file not in data_files:
                report.missing_files.append(manifest.file)
                continue
            _check_file(storage, manifest, TABLES[table].id_column, report, ids)
        for path in sorted(data_files - described):
            report.without_manifest.append(path)
            name = parse_file_name(path)
            if name is not None:
                ranges[(table, name.topic, name.partition, name.incarnation)].add((name.first, name.last))
        repeated = ids.repeated()
        if repeated:
            report.duplicate_ids[table] = repeated
    return ranges


def _check_file(storage: Storage, manifest: Manifest, column: str, report: Report, ids: IdCounts) -> None:
    """One data file against its manifest (read once: its sha256, then its ids); its bytes go on return."""
    data = storage.read(manifest.file)
    report.files += 1
    if Manifest.digest(data) != manifest.sha256:
        report.checksum_mismatches.append(manifest.file)
        return
    report.rows += manifest.rows
    ids.add(file_ids(data, column))


def _check_ranges(report: Report, ranges: Ranges) -> None:
    """Gaps and overlaps of the offset ranges, per topic-partition and incarnation."""
    for (table, topic, partition, incarnation), spans in sorted(ranges.items()):
        where = f"{table}: {topic}[{partition}]" + (f" incarnation {incarnation}" if incarnation else "")
        recreated = (
            f"{table}: {topic} has files from more than one incarnation (recreated, or the broker started empty)"
        )
        if incarnation and recreated not in report.notes:
            report.notes.append(recreated)
        expected = None
        for first, last in sorted(spans):
            if expected is None and first > 0:
                report.notes.append(f"{where} starts at offset {first} (earlier data expired?)")
            elif expected is not None and first > expected:
                report.gaps.append(f"{where} offsets {expected}-{first - 1} are in no file")
            elif expected is not None and first < expected:
                report.overlaps.append(f"{where} {first}-{last} overlaps up to {expected - 1}")
            expected = max(expected or 0, last + 1)
