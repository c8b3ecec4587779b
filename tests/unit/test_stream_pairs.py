"""preflog.stream_pairs: every pair of the audit log once, in batch order per partition, resumable, across kill -9.

The log is written here as the sink writes it (``batch_files``: one file per dt= folder per batch, then the
manifests), batch by batch, sometimes left half-written; what the stream yields is checked against the ids
this test put in, never against the code under test.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import preflog
from preflog.schemas.codec import SingleObjectCodec
from preflog.sinks.batch import batch_files
from preflog.sinks.storage import Storage

from .test_sink_columns import FORMATS, values_of

CODEC = SingleObjectCodec()
HERE = Path(__file__).parent


def _records(partition: int, first: int, last: int) -> list[dict[str, Any]]:
    values = values_of("pairs", last - first + 1, seed=first * 10 + partition)
    rows = [CODEC.decode(v, "PreferencePair") for v in values]
    for offset, row in zip(range(first, last + 1), rows, strict=True):
        row["pair_id"] = f"p{partition}-{offset:06d}"
    return rows


def _write(
    storage: Storage, partition: int, first: int, last: int, parts: int | None = None, change: Any = None
) -> list[str]:
    """Write a batch as the sink does (data files, then manifests); ``parts``: stop after that many parts."""
    records = _records(partition, first, last)
    for record in records if change else ():
        change(record)
    files = batch_files(FORMATS["pairs"], records, "t", partition, first, last, [])
    data = [(p, b) for p, b in files if not p.startswith("_manifests/")]
    manifests = {p.removeprefix("_manifests/").removesuffix(".json"): (p, b) for p, b in files if p.startswith("_")}
    written = data[:parts] if parts is not None else data
    for path, body in written:
        storage.put(path, body)
    for path, _ in written:
        storage.put(*manifests[path])
    return [p for p, _ in data]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["pair_id"] for r in rows]


def _expected(*batches: tuple[int, int, int]) -> set[str]:
    return {f"p{p}-{o:06d}" for p, first, last in batches for o in range(first, last + 1)}


def test_every_pair_once_batches_in_order_per_partition(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    storage = Storage(url)
    batches = [(p, b * 20, b * 20 + 19) for b in range(5) for p in (0, 1)]
    for p, first, last in batches:
        parts = _write(storage, p, first, last)
        assert parts  # several dt= folders per batch: the random times span four days
    rows = list(preflog.stream_pairs(url, follow=False, keys="sealed"))
    ids = _ids(rows)
    assert Counter(ids) == Counter(_expected(*batches))
    assert set(ids) == set(preflog.read_pairs(url, keys="sealed").column("pair_id").to_pylist())
    for p in (0, 1):
        offsets = [int(i.split("-")[1]) // 20 for i in ids if i.startswith(f"p{p}-")]
        assert offsets == sorted(offsets)  # batch after batch


def test_a_half_written_batch_waits_and_a_superseded_one_is_skipped(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    storage = Storage(url)
    _write(storage, 0, 0, 19)
    half = _write(storage, 0, 20, 39, parts=1)  # a sink killed after its first part
    assert len(half) > 1
    storage.put(half[1], b"not yet")  # ... and a data file without its manifest: never read
    first = list(preflog.stream_pairs(url, follow=False, keys="sealed"))
    assert set(_ids(first)) == _expected((0, 0, 19))
    _write(storage, 0, 20, 44)  # the restarted sink writes the range again, with other bounds
    _write(storage, 0, 45, 50)
    again = list(preflog.stream_pairs(url, follow=False, keys="sealed"))
    assert Counter(_ids(again)) == Counter(_expected((0, 0, 50)))


def test_a_token_resumes_at_the_next_pair_mid_batch(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    storage = Storage(url)
    for p, first, last in [(0, 0, 29), (1, 0, 29), (0, 30, 59)]:
        _write(storage, p, first, last)
    stream = preflog.stream_pairs(url, follow=False, keys="sealed", batch_rows=4)
    seen, token = [], ""
    for row in stream:
        seen.append(row["pair_id"])
        token = stream.token()
        if len(seen) == 37:
            break
    rest = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed", resume=token)))
    assert Counter(seen + rest) == Counter(_expected((0, 0, 59), (1, 0, 29)))
    with pytest.raises(ValueError, match="not a stream_pairs token"):
        preflog.stream_pairs(url, resume="{}")


def test_a_trainer_killed_again_and_again_sees_every_pair_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    url = f"file://{log}"
    storage = Storage(url)
    out = tmp_path / "seen.tsv"
    rng = random.Random(5)
    written: list[tuple[int, int, int]] = []

    def consumer() -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
        command = [sys.executable, str(HERE / "stream_consumer.py"), url, str(out)]
        return subprocess.Popen(command, env=env, start_new_session=True)

    proc = consumer()
    try:
        for step in range(12):
            p = step % 2
            first = sum(last - f + 1 for q, f, last in written if q == p)
            last = first + rng.randrange(5, 40)
            _write(storage, p, first, last)
            written.append((p, first, last))
            time.sleep(rng.uniform(0.05, 0.6))
            if step % 3 == 2:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                proc = consumer()
        expected = _expected(*written)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = out.read_bytes().split(b"\n")[:-1] if out.exists() else []
            if len(lines) >= len(expected):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # anything extra would show now
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    ids = [line.split(b"\t", 1)[0].decode() for line in out.read_bytes().split(b"\n")[:-1]]
    assert Counter(ids) == Counter(expected)
    for p in (0, 1):
        offsets = [int(i.split("-")[1]) for i in ids if i.startswith(f"p{p}-")]
        batches = [next(n for n, (q, f, last) in enumerate(written) if q == p and f <= o <= last) for o in offsets]
        assert batches == sorted(batches)


def test_the_stream_as_a_hugging_face_iterable_dataset(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    _write(Storage(url), 0, 0, 24)
    dataset = preflog.stream_pairs(url, follow=False, keys="sealed").as_dataset()
    assert type(dataset).__name__ == "IterableDataset"
    assert sorted(r["pair_id"] for r in dataset) == sorted(_expected((0, 0, 24)))


def test_a_training_feed_leaves_out_what_consent_and_retention_do_not_allow(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    url = f"file://{tmp_path}"
    now = datetime.now(timezone.utc)

    def privacy(record: dict[str, Any]) -> None:
        n = int(record["pair_id"].split("-")[1])
        record["inference_time"] = now - timedelta(days=10)
        record["inference_metadata"] = {
            0: {"preflog.consent": "analytics"},  # no training
            1: {"preflog.retention_days": "5"},  # ran out 5 days ago
            2: {"preflog.retention_days": "30"},
            3: {},  # states nothing: the unstated default allows training
        }[n % 4]
        record["feedback_metadata"] = {"preflog.consent": ""} if n == 7 else {}  # the feedback's own refusal

    _write(Storage(url), 0, 0, 19, change=privacy)
    stream = preflog.stream_pairs(url, follow=False, keys="sealed")
    kept = sorted(int(i.split("-")[1]) for i in _ids(list(stream)))
    assert kept == [n for n in range(20) if n % 4 in (2, 3) and n != 7]
    assert stream.left_out == {"no_consent": 5 + 1, "expired": 5}
    everything = preflog.stream_pairs(url, follow=False, keys="sealed", purpose=None)
    assert len(list(everything)) == 20


def test_overlapping_batches_give_each_pair_once_however_they_arrive(tmp_path: Path) -> None:
    """A writer that lost its partition and the next owner write the same records with other bounds."""
    url = f"file://{tmp_path}"
    storage = Storage(url)
    _write(storage, 0, 0, 19)
    _write(storage, 0, 20, 39)
    stream = preflog.stream_pairs(url, follow=False, keys="sealed", batch_rows=4)
    first = _ids(list(stream))
    token = stream.token()
    _write(storage, 0, 20, 44)  # overlaps what was read: only 40..44 are new
    _write(storage, 0, 45, 50)
    rest = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed", resume=token)))
    assert Counter(first + rest) == Counter(_expected((0, 0, 50)))
    everything = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed")))  # all four at once
    assert Counter(everything) == Counter(_expected((0, 0, 50)))
    partial = preflog.stream_pairs(url, follow=False, keys="sealed", batch_rows=2)
    taken = []
    for row in partial:  # stop inside a batch, then resume
        taken.append(row["pair_id"])
        if len(taken) == 25:
            break
    more = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed", resume=partial.token())))
    assert Counter(taken + more) == Counter(_expected((0, 0, 50)))


def test_a_batch_written_while_the_log_was_listed_is_not_skipped(tmp_path: Path) -> None:
    """A listing walks folder by folder: batch N may land in a folder already walked, N+1 in one walked later."""
    from datetime import datetime, timezone

    def day(d: int) -> Any:
        def change(record: dict[str, Any]) -> None:
            record["feedback_time"] = datetime(2026, 1, d, 12, tzinfo=timezone.utc)

        return change

    url = f"file://{tmp_path}"
    storage = Storage(url)
    _write(storage, 0, 0, 9, change=day(1))
    _write(storage, 0, 10, 19, change=day(2))
    stream = preflog.stream_pairs(url, follow=True, poll_s=0.01, keys="sealed")
    rows = iter(stream)
    seen = [next(rows)["pair_id"] for _ in range(20)]
    walk = stream.storage.fs.ls
    once: list[bool] = []

    def ls(path: str, *args: Any, **kwargs: Any) -> Any:
        out = walk(path, *args, **kwargs)
        if path.endswith("pairs/dt=2026-01-01") and not once:
            once.append(True)
            _write(storage, 0, 20, 29, change=day(1))  # N: in the folder just walked
            _write(storage, 0, 30, 39, change=day(2))  # N+1: in the folder walked next
        return out

    stream.storage.fs.ls = ls
    import threading

    threading.Timer(1.5, stream.stop.set).start()
    seen += [r["pair_id"] for r in rows]
    assert once and Counter(seen) == Counter(_expected((0, 0, 39)))


def test_sources_and_models_filter_as_read_pairs_does(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    _write(Storage(url), 0, 0, 39)
    table = preflog.read_pairs(url, keys="sealed")
    for source in ("AI_CRITIC", "human_annotator"):
        want = [i for i, s in zip(table.column("pair_id").to_pylist(), table.column("source").to_pylist(), strict=True)
                if s["type"] == source.upper()]  # fmt: skip
        got = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed", sources=[source])))
        assert want and sorted(got) == sorted(want)


def _as_turns(sent: list[dict[str, Any]]) -> Any:
    """A ``change`` for :func:`_write` making its records, in order, the pairs of the turns ``sent``."""
    events = iter(sent)

    def as_turn(record: dict[str, Any]) -> None:
        event = next(events)
        record.update(request_id=event["request_id"], conversation=event["conversation"])
        record.update(prompt_messages=event["prompt_messages"], prompt=event["prompt"])

    return as_turn


def test_subjects_select_as_read_pairs_does(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    users = iter(["ann", "bob", "cyd"] * 20)
    _write(Storage(url), 0, 0, 29, change=lambda r: r["context"].update(user_id=next(users)))
    everyone = list(preflog.stream_pairs(url, follow=False, keys="sealed"))
    want = [r["pair_id"] for r in everyone if r["context"]["user_id"] in ("ann", "cyd")]
    got = _ids(list(preflog.stream_pairs(url, follow=False, keys="sealed", subjects=["ann", "cyd"])))
    assert len(want) == 20 and got == want
    assert got == _ids(preflog.read_pairs(url, keys="sealed", subjects=["ann", "cyd"]).to_pylist())


def test_turns_given_by_reference_arrive_with_their_whole_history(tmp_path: Path) -> None:
    from .test_history import Chat, _plain, _turns

    url = f"file://{tmp_path}"
    chat = Chat()
    for k in range(4):
        chat.turn("say", candidate=k % 2, tools=k == 1)
    _turns(tmp_path, chat.sent[:3])  # the last turn's own record is not needed: nothing refers to it
    as_turn = _as_turns(chat.sent)
    _write(Storage(url), 0, 0, 3, change=as_turn)
    order = [e["request_id"] for e in chat.sent]
    got = sorted(preflog.stream_pairs(url, follow=False, keys="sealed"), key=lambda r: order.index(r["request_id"]))
    assert [r["prompt_messages"] for r in got] == [_plain(m) for m in chat.expected]
    assert [r["history_problem"] for r in got] == [None] * 4
    sent = preflog.stream_pairs(url, follow=False, keys="sealed", histories=False)
    as_sent = {r["request_id"]: r["prompt_messages"] for r in sent}
    assert [as_sent[e["request_id"]] for e in chat.sent] == [_plain(e["prompt_messages"]) for e in chat.sent]


def test_a_format_yields_what_export_writes_and_counts_what_it_leaves_out(tmp_path: Path) -> None:
    from preflog.sinks.export import export_rows

    url = f"file://{tmp_path}"
    _write(Storage(url), 0, 0, 29)
    for fmt in ("trl", "trl-conversational", "openai"):
        stream = preflog.stream_pairs(url, follow=False, keys="sealed", format=fmt)
        got = list(stream)
        left: Counter[str] = Counter()
        want = list(export_rows(preflog.read_pairs(url, keys="sealed"), fmt, left_out=left))
        assert sorted(got, key=str) == sorted(want, key=str), fmt
        assert sum(stream.left_out.values()) == sum(left.values()) and len(got) + sum(left.values()) == 30, fmt
    with pytest.raises(ValueError, match="kto"):
        preflog.stream_pairs(url, format="kto")


def test_a_formatted_feed_leaves_out_a_turn_whose_history_does_not_resolve(tmp_path: Path) -> None:
    from .test_history import Chat, _turns

    url = f"file://{tmp_path}"
    chat = Chat()
    for _ in range(3):
        chat.turn("say")
    _turns(tmp_path, chat.sent[1:])  # turn 0 never reached the turns table: turn 1 does not resolve, nor turn 2
    as_turn = _as_turns(chat.sent)
    _write(Storage(url), 0, 0, 2, change=as_turn)
    stream = preflog.stream_pairs(url, follow=False, keys="sealed", format="trl-conversational")
    assert [r["request_id"] for r in stream] == [chat.sent[0]["request_id"]]
    assert stream.left_out == Counter({"history: missing_turn": 2})
