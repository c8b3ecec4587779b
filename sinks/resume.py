"""Where a partition's writer resumes, read from the files already in the audit log.

The files are the writer's only snapshot (bytewax's rule for a stateful sink
partition: all state is derived from the resume state). For one
topic-partition they give:

* the last offset already in files of the topic's current incarnation, checked
  by :mod:`.incarnation`: the writer resumes after it, whatever the consumer
  group committed, so it never commits ahead of the files;
* a batch that a crash cut between its writes: completed when all its data
  files are there (the missing manifests are written from the files' batch
  metadata), else to be written again, cut where it was (``redo_until``);
* the most recent ids of the partition's table, for dedupe.
"""

from __future__ import annotations

import io
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from preflog.errors import PreflogError
from preflog.schemas.tables import TABLES

from .batch import Origin, TableFormat, batch_of
from .exceptions import StorageError
from .incarnation import decide
from .manifest import MANIFEST_DIR, Manifest, manifest_path
from .naming import FileName, parse_file_name
from .parquet import read_ids
from .storage import Storage

__all__ = ["ProbeAt", "ResumeState", "read_resume_state", "read_resume_state_retrying"]

log = logging.getLogger(__name__)

#: a probe of the record at an offset of the partition (see :func:`.incarnation.probe`)
ProbeAt = Callable[[int], str | None]


@dataclass
class ResumeState:
    """What the files say about one topic-partition.

    Attributes:
        written_upto: The last offset already in files of ``origin``'s incarnation (-1: none).
        origin: The topic's incarnation the writer continues (its number and broker topic id).
        redo_until: The last offset of a batch a crash cut short, to be written again up to exactly there.
        ids: The most recent ids already in the log, oldest first (empty ids are never kept).
    """

    written_upto: int = -1
    origin: Origin = field(default_factory=Origin)
    redo_until: int | None = None
    ids: OrderedDict[str, None] = field(default_factory=OrderedDict)


def read_resume_state_retrying(
    storage: Storage,
    fmt: TableFormat,
    topic: str,
    partition: int,
    topic_id: str,
    probe_at: ProbeAt,
    dedupe_window: int,
    limit_s: float = 240.0,
) -> ResumeState:
    """:func:`read_resume_state`, retried with backoff while the object store does not answer (an outage).

    The limit stays under the consumer's max.poll.interval.ms (300 s), which the assignment callback that
    calls this holds up.

    Raises:
        StorageError: The store did not answer within ``limit_s``.
        PreflogError: Any other error of preflog's (e.g. an incarnation that cannot be told), at once.
    """
    backoff, deadline = 0.5, time.monotonic() + limit_s
    while True:
        try:
            return read_resume_state(storage, fmt, topic, partition, topic_id, probe_at, dedupe_window)
        except PreflogError as exc:
            if not isinstance(exc, StorageError) or time.monotonic() > deadline:
                raise
            error: Exception = exc
        except Exception as exc:  # s3fs/botocore raise their own types for a store that is away
            if time.monotonic() > deadline:
                raise StorageError(f"reading the audit log at {storage.url}: {exc}") from exc
            error = exc
        log.warning("%s[%d]: reading the audit log failed (%s); retrying in %.1f s", topic, partition, error, backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 30.0)


def read_resume_state(
    storage: Storage,
    fmt: TableFormat,
    topic: str,
    partition: int,
    topic_id: str,
    probe_at: ProbeAt,
    dedupe_window: int,
) -> ResumeState:
    """Where to resume, and recent ids, from the files of this partition.

    Args:
        storage: The audit log.
        fmt: The format of the topic's table (``fmt.table`` names the table).
        topic: The output topic.
        partition: Its partition.
        topic_id: The broker's id of the topic now ('' if unknown).
        probe_at: Reads the identity of the record at an offset, where the topic ids cannot tell.
        dedupe_window: How many recent ids to load (0: none).

    Returns:
        The state the partition's writer starts from. Missing manifests of complete batches are written
        on the way.
    """
    table = fmt.table
    state = ResumeState()
    files: list[tuple[FileName, str]] = []
    ranges: list[tuple[FileName, str]] = []  # (name, manifest path) of every range, with or without a file
    manifests = set(storage.list(f"{MANIFEST_DIR}/{table}"))
    unlisted: list[tuple[FileName, str]] = []  # data files whose manifest is missing
    for relative in sorted(set(storage.list(table)) | manifests):
        name = parse_file_name(relative.removesuffix(".json"))
        if name is None or name.topic != topic or name.partition != partition:
            continue
        if not relative.endswith(".parquet"):
            ranges.append((name, relative))  # a manifest: of a file (even one deleted since), or of no rows
        elif manifest_path(relative) in manifests:
            files.append((name, relative))
        else:
            unlisted.append((name, relative))
    redo = _finish_batches(storage, fmt, unlisted, files, ranges)
    latest = None
    if ranges:
        name, path = max(ranges, key=lambda r: (r[0].incarnation, r[0].last))
        latest = Manifest.from_json(storage.read(path))
    decision = decide(latest, topic_id, probe_at)
    if decision.new:
        log.warning(
            "%s; this is another incarnation of the topic (deleted and recreated, or a broker that started "
            "empty): writing it from its beginning as incarnation %d, in new files; the earlier files stay",
            decision.reason,
            decision.incarnation,
        )
    state.written_upto = decision.resume_after
    state.origin = Origin(decision.incarnation, topic_id)
    if redo is not None and redo.incarnation == decision.incarnation and redo.first == decision.resume_after + 1:
        state.redo_until = redo.last
        log.warning("%s: a batch was cut short by a crash; writing offsets %d-%d again", redo, redo.first, redo.last)
    column = TABLES[table].id_column
    if column and dedupe_window:
        for _, relative in sorted(files, key=lambda f: (f[0].incarnation, f[0].last), reverse=True):
            for value in reversed(read_ids(storage.read(relative), column)):
                state.ids[value] = None
                state.ids.move_to_end(value, last=False)
            if len(state.ids) >= dedupe_window:
                break
    return state


def _finish_batches(
    storage: Storage,
    fmt: TableFormat,
    unlisted: list[tuple[FileName, str]],
    files: list[tuple[FileName, str]],
    ranges: list[tuple[FileName, str]],
) -> FileName | None:
    """Completes the batches a crash cut between their data files and their manifests.

    A batch whose data files are all there gets its missing manifests (and its files join ``files`` and
    ``ranges``); one missing a file is to be written again.

    Returns:
        The name of the batch to write again (at most one, the last), or None.
    """
    by_range: dict[tuple[int, int, int], list[tuple[FileName, str, dict[str, Any] | None]]] = {}
    for name, relative in unlisted:
        about = batch_of(storage.read(relative))
        by_range.setdefault((name.incarnation, name.first, name.last), []).append((name, relative, about))
    redo = None
    for parts in by_range.values():
        listed = sum(
            1
            for n, _ in files
            if (n.incarnation, n.first, n.last) == (parts[0][0].incarnation, parts[0][0].first, parts[0][0].last)
        )
        about = parts[0][2]
        if about is not None and listed + len(parts) < int(about["parts"]):
            redo = parts[0][0]
            continue
        for name, relative, about in parts:
            _repair_manifest(storage, fmt, relative, name, about)
            files.append((name, relative))
            ranges.append((name, manifest_path(relative)))
    return redo


def _repair_manifest(
    storage: Storage, fmt: TableFormat, relative: str, name: FileName, about: dict[str, Any] | None
) -> None:
    """Writes the manifest of a data file whose own was lost to a crash, from the file itself.

    The file's batch metadata gives the origin and skipped count; files written before it existed leave
    them unknown.
    """
    data = storage.read(relative)
    rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    if about is not None:
        origin = Origin(int(about["incarnation"]), str(about["topic_id"]), str(about["last_record"]))
        skipped = int(about["skipped"])
    else:
        origin, skipped = Origin(name.incarnation), -1
    manifest = fmt.manifest(
        relative, name.topic, name.partition, name.first, name.last, rows, skipped, Manifest.digest(data), origin
    )
    storage.put(manifest_path(relative), manifest.to_json())
    log.warning("wrote the missing manifest of %s", relative)
