"""``preflog erase``: keys deleted, builds holding the subject withdrawn, a receipt without personal data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from preflog.cli import app
from preflog.privacy.pseudonym import pseudonym

from .dataset_helpers import signal, write_table
from .test_dataset_privacy import SECRET, _sealed_log


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """A sealed log of alice, bob and carol (10 pairs each), privacy settings for it; (log URL, base args)."""
    url, _, _ = _sealed_log(tmp_path)
    write_table(tmp_path / "log", "unpaired", [signal(i, f"signal {i}?", "a", 0, True) for i in range(3)])
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    monkeypatch.setenv("PREFLOG_PRIVACY__ENABLED", "true")
    monkeypatch.setenv("PREFLOG_PRIVACY__MASTER_KEY_FILE", str(tmp_path / "master.key"))
    monkeypatch.setenv("PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("PREFLOG_PRIVACY__KEYS_DIR", str(tmp_path / "keys"))
    return url, ["--data-dir", str(tmp_path / "data")]


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _prompts(folder: Path) -> list[str]:
    table = pa.concat_tables(pq.read_table(p) for p in sorted((folder / "data").glob("*.parquet")))
    return sorted(table.column("prompt").to_pylist())


def test_erase_withdraws_the_builds_holding_the_subject_and_a_rebuild_leaves_it_out(
    tmp_path: Path, env: tuple[str, list[str]]
) -> None:
    url, base = env
    datasets = tmp_path / "data" / "datasets"
    _invoke([*base, "dataset", "build", "before", "--url", url])
    assert len(_prompts(datasets / "before")) == 30
    assert _invoke([*base, "privacy", "pseudonym", "alice"]).strip() == pseudonym("alice", SECRET)

    export = tmp_path / "pairs.jsonl"
    _invoke([*base, "export", str(export), "--url", url])
    assert export.exists()
    said = _invoke([*base, "erase", "--subject", "alice", "--url", url])
    assert "withdrew dataset build before (rebuild it under a new name" in said  # "before" is never rebuilt
    assert f"withdrew export {export}" in said and not export.exists()
    log_check = CliRunner().invoke(app, [*base, "verify", url]).output  # (the test's log has no manifests)
    assert "rows erased (their keys deleted; not a problem) │ 10" in log_check
    again = _invoke([*base, "erase", "--subject", "alice", "--url", url])
    assert "withdrew" not in again and "no data keys for them" in again  # erasing twice: harmless
    assert "pairs 10" in said  # alice's ten pairs now read as erased
    assert not (datasets / "before" / "data").exists() and not (datasets / "before" / "state").exists()
    verified = CliRunner().invoke(app, [*base, "dataset", "verify", "before"])
    assert verified.exit_code == 1 and "withdrawn by erasure-" in verified.output
    listed = _invoke([*base, "dataset", "list"])
    assert "withdrawn" in listed and [line.split()[-1] for line in listed.splitlines() if "before" in line] == ["yes"]
    assert _invoke([*base, "dataset", "show", "before"]).startswith("WITHDRAWN by erasure-")

    _invoke([*base, "dataset", "build", "after", "--url", url])
    assert _prompts(datasets / "after") == sorted(f"Question {i}?" for i in range(30) if i % 3)
    assert json.loads((datasets / "after" / "manifest.json").read_text())["privacy"]["erased"] == 10
    assert _invoke([*base, "dataset", "verify", "after"]).strip().endswith("OK")

    receipts = sorted((tmp_path / "data" / "privacy" / "erasures").glob("*.json"))
    assert len(receipts) == 2
    first = [json.loads(p.read_text()) for p in receipts]
    text = next(p.read_text() for p, r in zip(receipts, first, strict=True) if r["keys_erased"])
    receipt = json.loads(text)
    assert receipt["rows"] == {"pairs": 10, "unpaired": 0} and receipt["builds_withdrawn"] == ["before"]
    assert len(receipt["keys_erased"]) == 1 and receipt["by"] == "subject"
    assert "alice" not in text and pseudonym("alice", SECRET) not in text and "Question" not in text


def test_builds_of_another_root_are_withdrawn_and_a_copy_made_by_hand_is_flagged_by_verify(
    tmp_path: Path, env: tuple[str, list[str]]
) -> None:
    url, base = env
    _invoke([*base, "dataset", "build", "orig", "--url", url])
    copies = tmp_path / "copies"
    shutil.copytree(tmp_path / "data" / "datasets" / "orig", copies / "orig")  # no registry knows this one
    elsewhere = tmp_path / "elsewhere"
    _invoke([*base, "dataset", "build", "copy", "--url", url, "--root", str(elsewhere)])
    said = _invoke([*base, "erase", "--subject", "bob", "--url", url])  # the build registry knows this folder
    assert f"withdrew dataset build {(elsewhere / 'copy').resolve()}" in said
    assert not (elsewhere / "copy" / "data").exists()
    verified = CliRunner().invoke(app, [*base, "dataset", "verify", "copy", "--root", str(elsewhere)])
    assert verified.exit_code == 1 and "withdrawn by erasure-" in verified.output
    assert (copies / "orig" / "data").exists()
    flagged = CliRunner().invoke(app, [*base, "dataset", "verify", "orig", "--root", str(copies)])
    assert flagged.exit_code == 1 and "holds a subject erased by erasure-" in flagged.output


def test_erase_by_request_id_reaches_the_person_and_erasing_twice_is_harmless(
    tmp_path: Path, env: tuple[str, list[str]]
) -> None:
    url, base = env
    table = pq.read_table(next((tmp_path / "log" / "pairs").rglob("*.parquet")))
    rows = table.select(["request_id", "prompt"]).to_pylist()
    carol = rows[2]["request_id"]  # question 2 is carol's
    said = _invoke([*base, "erase", "--request-id", carol, "--url", url])
    assert "pairs 10" in said
    again = _invoke([*base, "erase", "--subject", "carol", "--url", url])
    assert "0 data keys deleted" in again
    listed = _invoke([*base, "privacy", "erasures"])
    assert listed.count("erasure-") == 2 and "by request_id" in listed


def test_a_rotation_after_an_erasure_leaves_the_erased_keys_wrapped_by_the_old_master_only(
    tmp_path: Path, env: tuple[str, list[str]]
) -> None:
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.keys import KeyError_, master_from_file
    from preflog.privacy.store import DirKeyStore
    from preflog.sinks.read import read_pairs

    url, base = env
    store = DirKeyStore(tmp_path / "keys")
    alice_keys = store.load().of_subject(pseudonym("alice", SECRET))  # what a raw copy of the topic still holds
    _invoke([*base, "erase", "--subject", "alice", "--url", url])
    _invoke(["privacy", "new-key", str(tmp_path / "new.key")])
    said = _invoke([*base, "privacy", "rotate", "--new-key-file", str(tmp_path / "new.key")])
    assert "re-wrapped 2 data keys" in said  # bob's and carol's
    new = master_from_file(tmp_path / "new.key", "test")
    snapshot = store.load()
    assert {k.master for k in snapshot.keys.values()} == {new.id}
    table = read_pairs(url, keys=Keyring(snapshot, [new], store))  # the new master alone reads every live row
    assert sum(table.column("erased").to_pylist()) == 10 and table.column("prompt").null_count == 10
    with pytest.raises(KeyError_):
        alice_keys[0].unwrap(new)  # the erased key's old record: useless once the old master is destroyed


def test_erase_removes_the_folders_of_builds_that_died_half_written(tmp_path: Path, env: tuple[str, list[str]]) -> None:
    import subprocess
    import sys

    url, base = env
    datasets = tmp_path / "data" / "datasets"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = datasets / f".v1.tmp-{dead.stdout.strip()}"  # a process that has ended
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "train-0.parquet").write_text("opened texts of a build killed mid-way")
    live = datasets / f".v2.work-{os.getpid()}"  # this process: alive
    live.mkdir()
    said = _invoke([*base, "erase", "--subject", "alice", "--url", url])
    assert not stale.exists() and live.exists()
    receipt = json.loads(next((tmp_path / "data" / "privacy" / "erasures").glob("*.json")).read_text())
    assert "1 half-written by a build that died removed" in receipt["stores"]["dataset builds"]
    assert "1 being written now" in receipt["stores"]["dataset builds"] and "erasure-" in said
