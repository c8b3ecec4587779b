"""A partition's writer is rebuilt from the files alone: resume point, crash-cut batches, manifests, ids, incarnations.

No broker: the writer takes anything with a Message's ``offset``/``value``/``timestamp``, and the topic ids (or a
probe function) tell incarnations apart. The sink's loop around it is tested against the real broker in
tests/integration/test_sink.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.registry import default_store
from preflog.settings import SinkSettings
from preflog.sinks.batch import TableFormat
from preflog.sinks.incarnation import END, IncarnationUnknownError, record_identity
from preflog.sinks.manifest import Manifest
from preflog.sinks.naming import parse_file_name
from preflog.sinks.partition import PartitionWriter
from preflog.sinks.storage import Storage

from ..samples import all_samples

TOPIC, TOPIC_ID = "preflog.pairs.v1", "Zm9vYmFyYmF6cXV4cXV1eA"
FMT = TableFormat("pairs", default_store().latest("PreferencePair"))
CODEC = SingleObjectCodec()
PAIR = all_samples()["PreferencePair"]


@dataclass
class Record:
    """What the writer reads of a ``confluent_kafka.Message``."""

    at: int
    data: bytes

    def offset(self) -> int:
        return self.at

    def value(self) -> bytes:
        return self.data

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_790_000_000_000 + self.at)


def pair_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def records(first: int, ids: list[int], days: list[int] | None = None) -> list[Any]:
    """Pairs with ids ``ids`` at offsets from ``first``, on the sample's day plus ``days``.

    Typed Any: they stand in for Messages.
    """
    out = []
    for n, i in enumerate(ids):
        when = PAIR["feedback_time"] + timedelta(days=(days or [0] * len(ids))[n])
        out.append(
            Record(first + n, CODEC.encode("PreferencePair", {**PAIR, "pair_id": pair_id(i), "feedback_time": when}))
        )
    return out


def no_probe(offset: int) -> str | None:
    raise AssertionError(f"the topic ids tell the incarnation; nothing should probe offset {offset}")


def resume(storage: Storage, topic_id: str = TOPIC_ID, probe_at: Any = no_probe, **conf: Any) -> PartitionWriter:
    settings = SinkSettings(**{"max_rows": 3, **conf})
    return PartitionWriter.resume(storage, TOPIC, 0, FMT, CODEC, settings, topic_id, probe_at)


def feed(storage: Storage, writer: PartitionWriter, batch: list[Any], keep: Any = lambda path: True) -> None:
    """What the sink's loop does: add, and at each cut write the files (those ``keep`` lets through), then move on."""
    for msg in batch:
        if writer.add(msg, 0.0):
            last, files = writer.cut()
            for relative, data in files:
                if keep(relative):
                    storage.put(relative, data)
            writer.written(last)


def manifests(storage: Storage) -> list[Manifest]:
    return [Manifest.from_json(storage.read(p)) for p in storage.list("_manifests")]


def test_a_writer_resumes_after_its_files_and_skips_ids_already_in_them(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    writer = resume(storage)
    assert (writer.written_upto, writer.next_offset, writer.origin.incarnation) == (-1, 0, 0)
    feed(storage, writer, records(0, [0, 1, 2, 3, 4, 5]))
    again = resume(storage)
    assert (again.written_upto, again.next_offset, again.redo_until) == (5, 6, None)
    assert list(again.ids) == [pair_id(i) for i in range(6)]  # oldest first
    assert not again.add(records(3, [3])[0], 0.0) and not again.batch  # already in files
    feed(storage, again, records(6, [2, 6, 7]))  # the processor re-emitted pair 2
    (last,) = [m for m in manifests(storage) if m.first_offset == 6]
    assert (last.last_offset, last.rows, last.duplicates_skipped, last.topic_id) == (8, 2, 1, TOPIC_ID)


def test_recent_ids_are_read_newest_file_first_until_the_window_is_full(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    feed(storage, resume(storage), records(0, [0, 1, 2, 3, 4, 5]))
    writer = resume(storage, dedupe_window=2)
    assert list(writer.ids) == [pair_id(i) for i in (3, 4, 5)]  # whole files; trimmed after the next batch
    feed(storage, writer, records(6, [6, 7, 8]))
    assert list(writer.ids) == [pair_id(7), pair_id(8)]
    assert not list(resume(storage, dedupe_window=0).ids)


def test_a_crash_between_a_data_file_and_its_manifest_is_completed_from_the_file(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    batch = records(0, [0, 1, 2])
    feed(storage, resume(storage), batch, keep=lambda path: not path.startswith("_manifests"))
    assert not manifests(storage)
    writer = resume(storage)
    (repaired,) = manifests(storage)
    assert (writer.written_upto, repaired.first_offset, repaired.last_offset, repaired.rows) == (2, 0, 2, 3)
    assert (repaired.topic_id, repaired.last_record) == (TOPIC_ID, record_identity(batch[-1]))
    assert repaired.sha256 == Manifest.digest(storage.read(repaired.file))


def test_a_batch_cut_short_by_a_crash_is_written_again_cut_where_it_was(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    feed(storage, resume(storage), records(0, [0, 1, 2]))
    batch = records(3, [3, 4, 5], days=[0, 1, 1])  # two date folders: two data files
    offered: list[str] = []

    def first_file_only(path: str) -> bool:
        offered.append(path)
        return len(offered) == 1

    feed(storage, resume(storage), batch, keep=first_file_only)
    writer = resume(storage, max_rows=1)
    assert (writer.written_upto, writer.redo_until) == (2, 5)
    assert not writer.add(batch[0], 0.0) and not writer.due(1e9)  # cut by its offset only, not by rows or time
    assert not writer.add(batch[1], 0.0)
    assert writer.add(batch[2], 0.0) and writer.redo_until is None
    last, files = writer.cut()
    assert last == 5 and [p for p, _ in files] == offered  # the same files, by name
    for relative, data in files:
        storage.put(relative, data)  # the file already there gets the same bytes: no ImmutableFileError
    writer.written(last)
    assert resume(storage).written_upto == 5
    assert sorted(m.rows for m in manifests(storage) if m.first_offset == 3) == [1, 2]


def test_another_topic_id_is_a_new_incarnation_written_from_its_beginning(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    feed(storage, resume(storage), records(0, [0, 1, 2]))
    writer = resume(storage, topic_id="b3RoZXJ0b3BpY2lkLS0tLQ")
    assert (writer.written_upto, writer.origin.incarnation) == (-1, 1)
    feed(storage, writer, records(0, [10, 11, 12]))
    names = [parse_file_name(p) for p in storage.list("pairs")]
    assert sorted((n.incarnation, n.first) for n in names if n) == [(0, 0), (1, 0)]
    assert resume(storage, topic_id="b3RoZXJ0b3BpY2lkLS0tLQ").written_upto == 2


@pytest.mark.parametrize(("seen", "incarnation", "upto"), [("same", 0, 2), (END, 1, -1)])
def test_without_topic_ids_the_record_at_the_last_offset_decides(
    tmp_path: Path, seen: str, incarnation: int, upto: int
) -> None:
    storage = Storage(f"file://{tmp_path}")
    feed(storage, resume(storage, topic_id=""), records(0, [0, 1, 2]))
    (manifest,) = manifests(storage)
    probed: list[int] = []

    def probe_at(offset: int) -> str:
        probed.append(offset)
        return manifest.last_record if seen == "same" else seen

    writer = resume(storage, topic_id="", probe_at=probe_at)
    assert (probed, writer.origin.incarnation, writer.written_upto) == ([2], incarnation, upto)


def test_a_record_that_cannot_be_probed_stops_the_writer(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    feed(storage, resume(storage, topic_id=""), records(0, [0, 1, 2]))
    with pytest.raises(IncarnationUnknownError):
        resume(storage, topic_id="", probe_at=lambda offset: None)
