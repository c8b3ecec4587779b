"""Per-subject data: selection by raw id or pseudonym, per-subject shards, and erasure and consent applied."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from preflog.dataset.build import build
from preflog.dataset.catalog import verify
from preflog.dataset.select import Selection
from preflog.privacy.erase import erase
from preflog.privacy.keyring import Keyring
from preflog.privacy.pseudonym import pseudonym
from preflog.privacy.subjects import label, labels
from preflog.sinks.read import read_pairs

from .dataset_helpers import rows, write_table
from .test_dataset_privacy import SECRET, USERS, _sealed_log

#: pairs per user of the plain log: alice and bob get shards at a minimum of 10, carol does not
COUNTS = {"alice": 16, "bob": 12, "carol": 4}


def _plain_log(root: Path, consent: dict[str, str] | None = None) -> str:
    """Each user answers prompts P0..P7 (twice each, different answers), so splits are not trivially disjoint."""
    pairs, users = [], []
    for user, n in COUNTS.items():
        for i in range(n):
            pairs.append((f"Prompt {i // 2}?", f"{user} yes {i}", f"{user} no {i}", "END_USER"))
            users.append(user)
    pairs.append(("Shared?", "A", "B", "END_USER"))  # alice and bob disagree: not a contradiction per subject
    pairs.append(("Shared?", "B", "A", "END_USER"))
    users += ["alice", "bob"]
    records = rows(pairs)
    for r, user in zip(records, users, strict=True):
        r["context"] = {**r["context"], "user_id": user}
        if consent and user in consent:
            r["inference_metadata"] = {"preflog.consent": consent[user]}
    return write_table(root, "pairs", records)


def _table(paths: list[Path]) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(paths))


def _key(prompt: str) -> str:
    return re.sub(r"\s+", " ", prompt.strip()).lower()


def test_labels_hide_raw_ids_and_a_raw_id_gives_its_pseudonym_with_the_secret() -> None:
    alice = pseudonym("alice", SECRET)
    assert labels(["alice"], None) == (label("alice"),)
    assert set(labels(["alice"], SECRET)) == {alice, label("alice")}
    assert labels([alice, alice], SECRET) == (alice,)  # a pseudonym as it is
    assert labels([label("bob")], SECRET) == (label("bob"),)
    assert label("alice").startswith("sub_") and "alice" not in label("alice")
    with pytest.raises(ValueError, match="empty"):
        labels([" "], None)
    with pytest.raises(ValueError, match="raw ids"):
        Selection(subjects=("alice",))  # a selection never holds a raw id


def test_read_pairs_selects_by_raw_id_on_a_plain_log(tmp_path: Path) -> None:
    url = _plain_log(tmp_path / "log")
    table = read_pairs(url, subjects=["bob"])
    assert table.num_rows == COUNTS["bob"] + 1
    assert set(r["user_id"] for r in table.column("context").to_pylist()) == {"bob"}
    assert read_pairs(url, subjects=[label("bob"), "carol"]).num_rows == COUNTS["bob"] + 1 + COUNTS["carol"]
    assert read_pairs(url, subjects=["nobody"]).num_rows == 0


def test_read_pairs_selects_by_pseudonym_or_raw_id_on_a_sealed_log(tmp_path: Path, monkeypatch: Any) -> None:
    url, store, master = _sealed_log(tmp_path, n=9)
    keys = Keyring(store.load(), [master], store)
    bob = pseudonym("bob", SECRET)
    by_pseudonym = read_pairs(url, keys=keys, subjects=[bob])
    assert sorted(by_pseudonym.column("prompt").to_pylist()) == [f"Question {i}?" for i in (1, 4, 7)]
    assert set(by_pseudonym.column("subject").to_pylist()) == {bob}
    monkeypatch.setenv("PREFLOG_PRIVACY__ENABLED", "true")
    monkeypatch.setenv("PREFLOG_PRIVACY__PSEUDONYM_SECRET", SECRET.decode())
    monkeypatch.setenv("PREFLOG_PRIVACY__MASTER_KEY_FILE", str(tmp_path / "master.key"))
    monkeypatch.setenv("PREFLOG_PRIVACY__KEYS_DIR", str(tmp_path / "keys"))
    by_raw = read_pairs(url, keys=keys, subjects=["bob"])  # the raw id, made a pseudonym with the settings' secret
    assert by_raw.column("pair_id").to_pylist() == by_pseudonym.column("pair_id").to_pylist()


def test_a_build_selects_subjects_and_records_only_labels(tmp_path: Path) -> None:
    url = _plain_log(tmp_path / "log")
    m = build(url, tmp_path / "ds", "one", Selection(subjects=labels(["carol"], None), test_fraction=0.3))
    data = _table(list((tmp_path / "ds" / "one" / "data").glob("*.parquet")))
    assert set(data.column("user_id").to_pylist()) == {"carol"} and data.num_rows == COUNTS["carol"]
    assert list(m["selection"]["subjects"]) == [label("carol")]
    assert '"carol' not in (tmp_path / "ds" / "one" / "manifest.json").read_text()  # no raw id
    plain = build(url, tmp_path / "ds", "all", Selection(test_fraction=0.3))
    assert "subjects" not in plain["selection"] and "per_subject" not in plain["selection"]  # older hashes hold


def test_per_subject_shards_with_a_minimum_and_prompt_disjoint_splits(tmp_path: Path) -> None:
    url = _plain_log(tmp_path / "log")
    selection = Selection(test_fraction=0.3, validation_fraction=0.2, seed=1, per_subject=True, min_per_subject=10)
    m = build(url, tmp_path / "ds", "personal", selection)
    folder = tmp_path / "ds" / "personal"
    shards = {p.name for p in (folder / "subjects").iterdir()}
    assert shards == {label("alice"), label("bob")}  # carol's 4 pairs are below the minimum
    per = m["per_subject"]
    assert per["below_minimum"] == {"subjects": 1, "rows": COUNTS["carol"]}
    assert per["without_subject"] == 0 and per["min_per_subject"] == 10
    for user in ("alice", "bob"):
        table = _table(list((folder / "subjects" / label(user)).glob("*.parquet")))
        assert set(table.column("user_id").to_pylist()) == {user}
        assert table.num_rows == COUNTS[user] + 1  # the shared prompt: their disagreement kept for each
        assert sum(per["subjects"][label(user)].values()) == table.num_rows
        prompts: dict[str, set[str]] = {}
        for path in (folder / "subjects" / label(user)).glob("*.parquet"):
            split = path.name.split("-")[0]
            prompts[split] = {_key(p) for p in pq.read_table(path).column("prompt").to_pylist()}
            assert per["subjects"][label(user)][split] == pq.read_table(path).num_rows
        assert len(prompts) >= 2, "the test needs a subject whose rows fall in more than one split"
        splits = list(prompts)
        for i, a in enumerate(splits):
            for b in splits[i + 1 :]:
                assert not prompts[a] & prompts[b], f"{user}: {a} and {b} share a prompt"
    manifest = (folder / "manifest.json").read_text()
    assert not any(f'"{u}' in manifest for u in COUNTS)  # labels only, never a raw id
    assert "per-subject shards" in (folder / "README.md").read_text()
    assert verify(tmp_path / "ds", "personal").ok
    (folder / "subjects" / label("bob") / "train-00000-of-00001.parquet").write_bytes(b"changed")
    assert not verify(tmp_path / "ds", "personal").ok  # the shards are in the manifest's hashes


def test_subjects_without_training_consent_get_no_shard(tmp_path: Path) -> None:
    url = _plain_log(tmp_path / "log", consent={"bob": "analytics"})
    m = build(url, tmp_path / "ds", "v1", Selection(per_subject=True, min_per_subject=1))
    assert set(m["per_subject"]["subjects"]) == {label("alice"), label("carol")}
    assert m["privacy"]["no_consent"] == COUNTS["bob"] + 1


def test_erased_subjects_get_no_shard_and_an_erasure_withdraws_a_per_subject_build(tmp_path: Path) -> None:
    url, store, master = _sealed_log(tmp_path, n=12)
    selection = Selection(per_subject=True, min_per_subject=2)
    alice, bob = pseudonym("alice", SECRET), pseudonym("bob", SECRET)
    m = build(url, tmp_path / "ds", "before", selection, keyring=Keyring(store.load(), [master], store))
    assert set(m["per_subject"]["subjects"]) == {pseudonym(u, SECRET) for u in USERS}
    shard = _table(list((tmp_path / "ds" / "before" / "subjects" / bob).glob("*.parquet")))
    assert set(shard.column("subject").to_pylist()) == {bob} and shard.num_rows == 4
    receipt = erase(store, {alice}, tmp_path / "data", tmp_path / "ds")
    assert receipt.builds_withdrawn == ["before"]
    assert not (tmp_path / "ds" / "before" / "subjects").exists()
    after = build(url, tmp_path / "ds", "after", selection, keyring=Keyring(store.load(), [master], store))
    assert set(after["per_subject"]["subjects"]) == {bob, pseudonym("carol", SECRET)}
    assert not (tmp_path / "ds" / "after" / "subjects" / alice).exists()
    assert after["privacy"]["erased"] == 4
    assert verify(tmp_path / "ds", "after").ok
    assert json.loads((tmp_path / "ds" / "after" / "manifest.json").read_text())["per_subject"]["below_minimum"] == {
        "subjects": 0,
        "rows": 0,
    }


def test_a_subject_build_of_a_log_with_turns_by_reference_counts_the_unresolved_turn(tmp_path: Path) -> None:
    from .dataset_helpers import SAMPLE, write_log

    lost = "00000000-0000-4000-8000-00000000beef"  # a turn that never reached the turns table
    conv = {"id": "c-1", "turn": 1, "previous_request_id": lost, "previous_candidate": 0}
    alice, bob = ({**SAMPLE["context"], "user_id": u} for u in ("alice", "bob"))
    write_log(tmp_path / "log", [("And then?", "More.", "Less.", "END_USER")], conversation=conv, context=alice)
    write_log(tmp_path / "log", [("Again?", "Yes.", "No.", "END_USER")], first=1, conversation=conv, context=bob)
    url = write_log(tmp_path / "log", [("Name a prime.", "7", "9", "END_USER")], first=2, context=alice)
    m = build(url, tmp_path / "ds", "a", Selection(test_fraction=0.0, subjects=labels(["alice"], secret=None)))
    assert m["rows"]["train"] == 1 and m["left_out"]["history"] == {"missing_turn": 1}  # alice's turn only


def test_per_subject_leaves_the_build_s_other_outputs_as_they_are_without_it(tmp_path: Path) -> None:
    url = _plain_log(tmp_path / "log")
    plain = build(url, tmp_path / "ds", "plain", Selection(test_fraction=0.3, seed=1))
    split = build(url, tmp_path / "ds", "split", Selection(test_fraction=0.3, seed=1, per_subject=True))

    def others(m: dict[str, Any]) -> dict[str, str]:
        return {f["path"]: f["sha256"] for f in m["files"] if f["path"].split("/")[0] not in ("subjects", "README.md")}

    assert others(split) == others(plain)  # data/, every format, the records and state/: byte for byte
    counted = ("rows", "merged_duplicates", "contradicted_rows", "contradictions_dropped")
    assert {k: split[k] for k in counted} == {k: plain[k] for k in counted}
    assert plain["contradictions_dropped"] == 2  # alice and bob's 1-to-1 disagreement: a tie across subjects
    shards = _table(list((tmp_path / "ds" / "split" / "subjects").rglob("*.parquet")))
    shared = [r for r in shards.to_pylist() if r["prompt"] == "Shared?"]
    assert sorted((r["user_id"], r["chosen"], r["weight"]) for r in shared) == [("alice", "A", 1.0), ("bob", "B", 1.0)]


def test_a_subject_shard_has_the_columns_and_types_of_data_with_tool_calls_and_images(tmp_path: Path) -> None:
    import hashlib
    import io

    from PIL import Image

    from .dataset_helpers import SAMPLE, write_log

    picture = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(picture, format="PNG")
    (tmp_path / "red.png").write_bytes(picture.getvalue())
    image = {"uri": f"file://{tmp_path / 'red.png'}", "sha256": hashlib.sha256(picture.getvalue()).hexdigest()}
    asked = [
        {"role": "user", "content": "Add the red square's sides.", "images": [{**image, "media_type": "image/png"}]}
    ]
    call = {"id": "c1", "name": "add", "arguments": '{"a": 2, "b": 2}'}
    trajectory = [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "4", "name": "add", "tool_call_id": "c1"},
        {"role": "assistant", "content": "4"},
    ]
    url = write_log(tmp_path / "log", [("Add the red square's sides.", "4", "5", "END_USER")], prompt_messages=asked,
                    chosen_messages=trajectory, tools='[{"type": "function", "function": {"name": "add"}}]',
                    context={**SAMPLE["context"], "user_id": "alice"})  # fmt: skip
    build(url, tmp_path / "ds", "x", Selection(test_fraction=0.0, per_subject=True))
    folder = tmp_path / "ds" / "x"
    data = pq.read_schema(folder / "data" / "train-00000-of-00001.parquet")
    shard = pq.read_schema(folder / "subjects" / label("alice") / "train-00000-of-00001.parquet")
    assert "images" in data.names and "tools" in data.names
    assert shard.equals(data, check_metadata=True)  # the same shaped messages, Json and Image features alike
    rows = pq.read_table(folder / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert pq.read_table(folder / "subjects" / label("alice") / "train-00000-of-00001.parquet").to_pylist() == rows
