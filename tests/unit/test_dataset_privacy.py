"""Consent and retention in dataset builds: rows that do not allow training are left out, and counted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from preflog.dataset.build import build
from preflog.dataset.catalog import verify
from preflog.dataset.inputs import SealedLogError
from preflog.dataset.select import Selection
from preflog.privacy.keyring import Keyring
from preflog.privacy.keys import MasterKey, generate_master
from preflog.privacy.pseudonym import pseudonym
from preflog.privacy.sealer import Privacy, Sealer
from preflog.privacy.store import DirKeyStore
from preflog.schemas.events import feedback_record, inference_record

from .dataset_helpers import rows, signal, write_table

SELECTION = Selection(test_fraction=0.2, seed=3)
#: the inference's metadata, the feedback's, and why the row is left out (None: kept) of each question
CASES: list[tuple[dict[str, str], dict[str, str], str | None]] = [
    ({}, {}, None),  # an old record: states nothing
    ({"preflog.consent": "training,analytics"}, {}, None),
    ({"preflog.consent": "training"}, {"preflog.consent": "training"}, None),
    ({"preflog.consent": "analytics"}, {}, "no_consent"),
    ({"preflog.consent": ""}, {}, "no_consent"),  # stated: no purpose at all
    ({}, {"preflog.consent": "analytics"}, "no_consent"),  # the judge withheld training
    ({"preflog.retention_days": "3650"}, {}, None),  # the sample's inference is of 2026-11-01
    ({"preflog.retention_days": "1"}, {}, "expired"),
    ({"preflog.retention_days": "0.5", "preflog.consent": "analytics"}, {}, "no_consent"),  # the first reason
    ({"preflog.retention_days": "not a number"}, {}, None),  # never expires, never fails the build
]


def _log(root: Path, copies: int = 3) -> str:
    pairs, metadata = [], []
    for i, (inference, feedback, _) in enumerate(CASES * copies):
        pairs.append((f"Question {i}?", "yes", "no", "END_USER"))
        metadata.append((inference, feedback))
    records = rows(pairs)
    for r, (inference, feedback) in zip(records, metadata, strict=True):
        r["inference_metadata"] = {"region": "eu", **inference}
        r["feedback_metadata"] = feedback
    return write_table(root, "pairs", records)


def _prompts(folder: Path) -> set[str]:
    table = pa.concat_tables(pq.read_table(p) for p in sorted((folder / "data").glob("*.parquet")))
    return set(table.column("prompt").to_pylist())


def _expected(copies: int = 3) -> tuple[set[str], dict[str, int]]:
    kept, left_out = set(), {"erased": 0, "no_consent": 0, "expired": 0}
    for i, (_, _, reason) in enumerate(CASES * copies):
        if reason is None:
            kept.add(f"Question {i}?")
        else:
            left_out[reason] += 1
    return kept, left_out


def test_rows_without_training_consent_or_past_retention_are_left_out_and_counted(tmp_path: Path) -> None:
    url = _log(tmp_path / "log")
    m = build(url, tmp_path / "ds", "v1", SELECTION)
    kept, left_out = _expected()
    assert _prompts(tmp_path / "ds" / "v1") == kept
    assert m["privacy"] == left_out
    assert "unstated_consent" not in m["selection"]
    card = (tmp_path / "ds" / "v1" / "README.md").read_text()
    assert "left out for privacy" in card
    assert f"{left_out['no_consent']} without consent (no_consent)" in card
    assert f"{left_out['expired']} past their retention (expired)" in card
    assert verify(tmp_path / "ds", "v1").ok
    for line in (tmp_path / "ds" / "v1" / "trl" / "train.jsonl").read_text().splitlines():
        assert json.loads(line)["prompt"] in kept  # the JSON lines too


def test_unstated_consent_follows_the_setting_and_the_selection_records_it(tmp_path: Path) -> None:
    url = _log(tmp_path / "log", copies=1)
    write_table(tmp_path / "log", "unpaired", [signal(i, f"signal {i}?", "a", 0, True) for i in range(4)])
    m = build(url, tmp_path / "ds", "strict", SELECTION, unstated_consent=("analytics",))
    stated = {f"Question {i}?" for i, (inf, _, why) in enumerate(CASES) if why is None and "preflog.consent" in inf}
    assert _prompts(tmp_path / "ds" / "strict") == stated
    assert m["selection"]["unstated_consent"] == ["analytics"]
    unstated = sum(1 for inf, _, reason in CASES if reason != "no_consent" and "preflog.consent" not in inf)
    assert m["privacy"]["no_consent"] == _expected(1)[1]["no_consent"] + unstated + 4  # the 4 signals too
    assert m["privacy"]["expired"] == 0  # the expired row states no consent: its first reason is no_consent


def test_a_log_without_privacy_facts_builds_as_before(tmp_path: Path) -> None:
    url = write_table(tmp_path / "log", "pairs", rows([(f"Q {i}?", "a", "b", "END_USER") for i in range(10)]))
    m = build(url, tmp_path / "ds", "plain", SELECTION)
    assert m["privacy"] == {"erased": 0, "no_consent": 0, "expired": 0}
    assert "left out for privacy" not in (tmp_path / "ds" / "plain" / "README.md").read_text()


def test_an_incremental_build_counts_and_keeps_as_a_full_one(tmp_path: Path) -> None:
    url = _log(tmp_path / "log", copies=2)
    build(url, tmp_path / "ds", "first", SELECTION)
    later_rows = rows([(f"Later {i}?", "yes", "no", "END_USER") for i in range(len(CASES))], first=1000)
    for r, (inference, feedback, _) in zip(later_rows, CASES, strict=True):
        r["inference_metadata"], r["feedback_metadata"] = inference, feedback
    write_table(tmp_path / "log", "pairs", later_rows, first=1000)
    later = build(url, tmp_path / "ds", "later", SELECTION, since="first")
    full = build(url, tmp_path / "ds", "full", SELECTION)
    assert later["privacy"] == full["privacy"] == {k: 3 * v for k, v in _expected(1)[1].items()}
    assert later["content_hash"] == full["content_hash"]


SECRET = b"dataset-privacy-test-secret-0123"
USERS = ("alice", "bob", "carol")


def _sealed_log(tmp_path: Path, n: int = 30) -> tuple[str, DirKeyStore, MasterKey]:
    """A log of ``n`` pairs sealed by the SDK's sealer, of three users in turn (question i is USERS[i % 3]'s)."""
    master = generate_master(tmp_path / "master.key")
    store = DirKeyStore(tmp_path / "keys")
    sealer = Sealer(SECRET, master, store)
    records = rows([(f"Question {i}?", f"yes {i}", f"no {i}", "END_USER") for i in range(n)])
    for i, r in enumerate(records):
        user = USERS[i % len(USERS)]
        inference = sealer.inference(inference_record({
            "request_id": str(uuid.uuid4()), "event_time": "2026-12-01T10:00:00Z", "prompt": r["prompt"],
            "prompt_messages": [{"role": "user", "content": r["prompt"]}], "candidates": [r["rejected"], r["chosen"]],
            "model": "m", "context": {"user_id": user}, "metadata": {"ticket": f"T-{i}"},
        }), Privacy())  # fmt: skip
        feedback = sealer.feedback(feedback_record({
            "feedback_id": str(uuid.uuid4()), "request_id": inference["request_id"],
            "event_time": "2026-12-01T10:01:00Z", "kind": "PAIRWISE", "pairwise": {"chosen": 1, "rejected": 0},
            "source": {"type": "END_USER", "id": user}, "rationale": f"because {i}",
        }), Privacy())  # fmt: skip
        r.update(
            request_id=inference["request_id"], feedback_id=feedback["feedback_id"],
            prompt=inference["prompt"], prompt_messages=inference["prompt_messages"],
            chosen=inference["candidates"][1]["text"], rejected=inference["candidates"][0]["text"],
            chosen_messages=None, rejected_messages=None, rationale=feedback["rationale"],
            inference_metadata=inference["metadata"], feedback_metadata=feedback["metadata"],
            context={**r["context"], "user_id": inference["context"]["user_id"]},
        )  # fmt: skip
    return write_table(tmp_path / "log", "pairs", records), store, master


def test_a_sealed_log_builds_opened_with_subjects_and_erased_rows_left_out(tmp_path: Path) -> None:
    url, store, master = _sealed_log(tmp_path)
    with pytest.raises(SealedLogError, match="PREFLOG_PRIVACY__"):
        build(url, tmp_path / "ds", "blind", SELECTION)
    assert not (tmp_path / "ds" / "blind").exists()

    m = build(url, tmp_path / "ds", "before", SELECTION, keyring=Keyring(store.load(), [master], store))
    table = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "ds" / "before" / "data").glob("*.parquet")))
    assert sorted(table.column("prompt").to_pylist()) == sorted(f"Question {i}?" for i in range(30))
    by_prompt = dict(zip(table.column("prompt").to_pylist(), table.column("subject").to_pylist(), strict=True))
    assert all(by_prompt[f"Question {i}?"] == pseudonym(USERS[i % 3], SECRET) for i in range(30))
    lineage = pq.read_table(tmp_path / "ds" / "before" / "lineage" / "subjects.parquet").column("subject")
    assert lineage.to_pylist() == sorted(pseudonym(u, SECRET) for u in USERS)
    assert m["privacy"]["erased"] == 0 and verify(tmp_path / "ds", "before").ok
    for path in (tmp_path / "ds" / "before").rglob("*.jsonl"):
        assert "pf1:" not in path.read_text()  # no ciphertext reaches a training file

    alice = pseudonym("alice", SECRET)
    store.erase(store.load().of_subject(alice), "erasure-1")
    m = build(url, tmp_path / "ds", "after", SELECTION, keyring=Keyring(store.load(), [master], store))
    table = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "ds" / "after" / "data").glob("*.parquet")))
    assert sorted(table.column("prompt").to_pylist()) == sorted(f"Question {i}?" for i in range(30) if i % 3)
    assert m["privacy"]["erased"] == 10  # alice's 10 pairs: counted, not silently gone
    assert alice not in pq.read_table(tmp_path / "ds" / "after" / "lineage" / "subjects.parquet").column(
        "subject"
    ).to_pylist()


def test_read_pairs_opens_a_sealed_log_file_and_reads_erased_messages_as_null(tmp_path: Path) -> None:
    from preflog.sinks.read import read_pairs

    url, store, master = _sealed_log(tmp_path, n=6)
    store.erase(store.load().of_subject(pseudonym("bob", SECRET)), "erasure-1")
    table = read_pairs(url, keys=Keyring(store.load(), [master], store))
    rows = sorted(table.to_pylist(), key=lambda r: r["pair_id"])  # ids follow the questions
    assert [r["erased"] for r in rows] == [i % 3 == 1 for i in range(6)]  # bob's: questions 1 and 4
    for i, r in enumerate(rows):
        if i % 3 == 1:
            assert r["prompt"] is None and [(m["role"], m["content"]) for m in r["prompt_messages"]] == [("user", None)]
        else:
            assert r["prompt"] == f"Question {i}?" and r["prompt_messages"][0]["content"] == f"Question {i}?"


def test_a_plain_log_whose_text_starts_like_a_sealed_value_reads_and_builds_as_text(tmp_path: Path) -> None:
    from preflog.sinks.read import read_pairs

    texts = ["pf1:0123456789abcdef: hello", "pf1:0123456789abcdef:" + "not base64 at all!" * 3]
    url = write_table(tmp_path / "log", "pairs", rows([(t, "yes", "no", "END_USER") for t in texts]))
    assert sorted(read_pairs(url).column("prompt").to_pylist()) == sorted(texts)  # no keys asked for
    build(url, tmp_path / "ds", "v1", SELECTION)
    assert sorted(_prompts(tmp_path / "ds" / "v1")) == sorted(texts)


def test_a_plain_log_builds_the_same_with_privacy_keys_given_and_since_refuses_a_withdrawn_base(tmp_path: Path) -> None:
    from preflog.dataset.inputs import BuildError
    from preflog.privacy.erase import withdraw

    url = _log(tmp_path / "log", copies=1)
    master = generate_master(tmp_path / "master.key")
    store = DirKeyStore(tmp_path / "keys")
    plain = build(url, tmp_path / "ds", "plain", SELECTION)
    keyed = build(url, tmp_path / "ds", "keyed", SELECTION, keyring=Keyring(store.load(), [master], store))
    assert keyed["content_hash"] == plain["content_hash"]  # privacy on changes nothing of a log never sealed
    assert not (tmp_path / "ds" / "keyed" / "lineage").exists()

    withdraw(tmp_path / "ds" / "plain", "erasure-x", "2026-12-07T00:00:00+00:00")
    with pytest.raises(BuildError, match="withdrawn by an erasure"):
        build(url, tmp_path / "ds", "again", SELECTION, since="plain")


def test_a_build_whose_keys_are_lost_fails_naming_the_fix(tmp_path: Path) -> None:
    from preflog.dataset.inputs import BuildError

    url, _, master = _sealed_log(tmp_path, n=6)
    lost = Keyring(DirKeyStore(tmp_path / "empty").load(), [master], None)  # another keys directory: no keys
    with pytest.raises(BuildError, match="restore it from its backup"):
        build(url, tmp_path / "ds", "lost", SELECTION, keyring=lost)
    assert not (tmp_path / "ds" / "lost").exists()
