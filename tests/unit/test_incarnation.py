"""Telling a topic's incarnations apart: by topic id, else by the record at the last offset in the files."""

from __future__ import annotations

from dataclasses import replace

import pytest

from preflog.sinks.incarnation import END, IncarnationUnknownError, decide
from preflog.sinks.manifest import Manifest
from preflog.sinks.naming import FileName, file_name, parse_file_name

LATEST = Manifest(
    "pairs/dt=2026-11-01/x.parquet", "pairs", "t", 2, 100, 199, 100, 0, "", "PreferencePair", "00", "", 0, "A", "1:ab"
)


def no_probe(offset: int) -> str | None:
    raise AssertionError("the topic id decides; no record needs reading")


def test_no_files_start_the_first_incarnation() -> None:
    d = decide(None, "A", no_probe)
    assert (d.incarnation, d.resume_after, d.new) == (0, -1, False)


def test_the_same_topic_id_resumes_after_the_files() -> None:
    d = decide(LATEST, "A", no_probe)
    assert (d.incarnation, d.resume_after, d.new) == (0, 199, False)


def test_another_topic_id_starts_the_next_incarnation_from_the_beginning() -> None:
    d = decide(replace(LATEST, incarnation=3), "B", no_probe)
    assert (d.incarnation, d.resume_after, d.new) == (4, -1, True)
    assert "topic id B" in d.reason and "topic id A" in d.reason


@pytest.mark.parametrize(
    ("seen", "last_record", "same"),
    [
        ("1:ab", "1:ab", True),  # the record the files recorded
        ("1:ab", "", True),  # a manifest from before identities were kept: the record exists
        ("2:cd", "1:ab", False),  # another record at that offset
        (END, "1:ab", False),  # the partition ends below it
        (END, "", False),
    ],
)
def test_without_topic_ids_the_record_at_the_last_offset_decides(
    seen: str | None, last_record: str, same: bool
) -> None:
    asked: list[int] = []

    def probe_at(offset: int) -> str | None:
        asked.append(offset)
        return seen

    for files_id, broker_id in (("", "B"), ("A", ""), ("", "")):
        asked.clear()
        d = decide(replace(LATEST, topic_id=files_id, last_record=last_record), broker_id, probe_at)
        assert asked == [199]
        assert d.new is not same
        assert (d.incarnation, d.resume_after) == ((0, 199) if same else (1, -1))


def test_incarnations_after_the_first_are_named_apart_and_sort_after_it() -> None:
    first = file_name("preflog.pairs.v1", 3, 0, 99)
    later = file_name("preflog.pairs.v1", 3, 0, 99, incarnation=1)
    assert first != later and "+i0001+" in later
    assert parse_file_name(later) == FileName("preflog.pairs.v1", 3, 0, 99, 1)
    assert parse_file_name(first).incarnation == 0  # type: ignore[union-attr]
    assert sorted([later, first]) == [first, later]


def test_old_manifests_read_with_defaults() -> None:
    old = b'{"file": "f", "table": "pairs", "topic": "t", "partition": 0, "first_offset": 0, "last_offset": 9, '
    old += b'"rows": 10, "duplicates_skipped": 0, "sha256": "", "schema": "PreferencePair", '
    old += b'"schema_fingerprint": "00", "written_at": ""}'
    m = Manifest.from_json(old)
    assert (m.incarnation, m.topic_id, m.last_record) == (0, "", "")


def test_a_record_that_cannot_be_read_stops_the_writer_rather_than_guess() -> None:
    with pytest.raises(IncarnationUnknownError, match="not resuming on a guess"):
        decide(replace(LATEST, topic_id=""), "B", lambda offset: None)
