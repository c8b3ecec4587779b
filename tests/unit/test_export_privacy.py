"""Privacy in ``preflog export`` and ``preflog tail``: sealed fields opened, never written or shown sealed.

An export leaves out (and counts) erased rows and rows privacy does not allow in a training set, and records the
subjects it holds, so an erasure finds the copy.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from preflog.cli.root import app
from preflog.cli.tail import Opener, shown
from preflog.errors import ConfigError
from preflog.privacy import fields as f
from preflog.privacy.envelope import MARK, seal
from preflog.privacy.keyring import Keyring
from preflog.privacy.keys import DataKey, MasterKey, generate_master
from preflog.privacy.lineage import REGISTRY, exports_holding, read_registry
from preflog.privacy.pseudonym import pseudonym
from preflog.privacy.store import DirKeyStore
from preflog.sinks.export import PrivacyGate
from preflog.sinks.filtered import iter_filtered

from .dataset_helpers import rows, signal, write_table

SECRET = b"0123456789abcdef-test-secret"
USERS = ["ann", "bob", "cyd", "dee"]
#: per pair (cycled): the inference's privacy facts, the feedback's, and why it is left out (None: written)
CASES: list[tuple[dict[str, str], dict[str, str], str | None]] = [
    ({}, {}, None),
    ({f.CONSENT: "training,analytics"}, {}, None),
    ({f.CONSENT: "analytics"}, {}, "no_consent"),
    ({}, {f.CONSENT: "analytics"}, "no_consent"),  # the judge withheld training
    ({f.RETENTION: "1"}, {}, "expired"),  # the inference is of 2020-01-01
    ({f.RETENTION: "36500"}, {}, None),
    ({f.RETENTION: "1", f.CONSENT: ""}, {}, "no_consent"),  # the first reason counts
]
PER_USER = 9  # pairs of each user: every case once, two again
OLD = datetime(2020, 1, 1, 12, 0, tzinfo=timezone.utc)


class Log:
    """A sealed audit log: each user's fields sealed with the user's data key, and what each pair should do."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.master_file = tmp / "master.key"
        self.master: MasterKey = generate_master(self.master_file)
        self.store = DirKeyStore(tmp / "keys")
        self.url = f"file://{tmp / 'log'}"
        self.subject = {u: pseudonym(f"user-{u}", SECRET) for u in USERS}
        self.aead: dict[str, tuple[str, AESGCM]] = {}
        #: per pair: (user, prompt marker, reason)
        self.pairs: list[tuple[str, str, str | None]] = []

    def key(self, user: str, consent: str | None = None) -> tuple[str, AESGCM]:
        scope = f"{user}/{consent}"
        if scope not in self.aead:
            record, key = DataKey.make(self.subject[user], self.master, int(time.time() * 1000), consent=consent)
            self.store.put([record])
            self.aead[scope] = (record.key_id, AESGCM(key))
        return self.aead[scope]

    def write_pairs(self) -> None:
        texts = []
        for u in USERS:
            for i in range(PER_USER):
                texts.append((f"MARK-{u}-prompt-{i}", f"MARK-{u}-chosen-{i}", f"MARK-{u}-rejected-{i}", "END_USER"))
        records = rows(texts)
        for n, r in enumerate(records):
            user, i = USERS[n // PER_USER], n % PER_USER
            inference, feedback, reason = CASES[i % len(CASES)]
            key_id, aead = self.key(user)

            def s(text: str, key_id: str = key_id, aead: AESGCM = aead) -> str:
                return seal(aead, key_id, text)

            prompt = r["prompt"]
            r["prompt"] = s(prompt)
            r["prompt_messages"] = [{"role": "system", "content": s(f"MARK-{user}-system")},
                                    {"role": "user", "content": s(prompt)}]  # fmt: skip
            r["chosen"], r["rejected"] = s(r["chosen"]), s(r["rejected"])
            r["chosen_messages"] = [{"role": "assistant", "content": r["chosen"]}]
            r["rationale"] = s(f"MARK-{user}-why")
            r["inference_time"] = OLD
            r["inference_metadata"] = {"ticket": s(f"MARK-{user}-ticket"), f.SUBJECT: self.subject[user],
                                       f.KEY: key_id, **inference}  # fmt: skip
            r["feedback_metadata"] = {"note": s(f"MARK-{user}-note"), f.SUBJECT: self.subject[user], **feedback}
            self.pairs.append((user, prompt, reason))
        write_table(self.tmp / "log", "pairs", records)

    def erase(self, user: str) -> None:
        self.store.erase(self.store.load().of_subject(self.subject[user]), f"erasure-{user}")

    def expected(self, erased: set[str]) -> tuple[set[str], dict[str, int]]:
        """The prompts written and the rows left out by reason, computed from the cases (not by the code tested)."""
        written, left_out = set(), {"erased": 0, "no_consent": 0, "expired": 0}
        for user, prompt, reason in self.pairs:
            why = "erased" if user in erased else reason
            if why is None:
                written.add(prompt)
            else:
                left_out[why] += 1
        return written, left_out

    def env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PREFLOG_PRIVACY__MASTER_KEY_FILE", str(self.master_file))
        monkeypatch.setenv("PREFLOG_PRIVACY__KEYS_DIR", str(self.store.path))


pytestmark = pytest.mark.usefixtures("no_privacy_env")


@pytest.fixture
def log(tmp_path: Path) -> Log:
    found = Log(tmp_path)
    found.write_pairs()
    return found


def _export(log: Log, out: Path, *flags: str) -> Any:
    args = ["--data-dir", str(log.tmp / "data"), "export", str(out), "--url", log.url, "--memory-limit", "128MB"]
    return CliRunner().invoke(app, [*args, *flags])


def _no_sealed_or_erased_text(path: Path, erased: set[str]) -> None:
    text = path.read_text()
    assert MARK not in text
    for user in erased:
        assert f"MARK-{user}-" not in text


def test_a_sealed_log_exports_opened_with_what_privacy_forbids_left_out_and_counted(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.env(monkeypatch)
    out = log.tmp / "train.jsonl"
    result = _export(log, out, "--format", "trl")
    assert result.exit_code == 0, result.output
    written, left_out = log.expected(erased=set())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["prompt"] for line in lines} == {f"MARK-{u}-system\n\n{p}" for u, p, _ in log.pairs if p in written}
    assert {line["chosen"] for line in lines} == {p.replace("prompt", "chosen") for p in written}
    assert len(lines) == len(written) == len(USERS) * PER_USER - left_out["no_consent"] - left_out["expired"]
    assert f"{left_out['no_consent']} rows left out without training consent" in result.output
    assert f"{left_out['expired']} rows left out past their retention" in result.output
    assert "erased rows left out" not in result.output
    _no_sealed_or_erased_text(out, set())
    sidecar = pq.read_table(f"{out}.subjects.parquet")
    assert sidecar.column_names == ["subject"]
    assert sorted(sidecar.column("subject").to_pylist()) == sorted(log.subject.values())
    (entry,) = read_registry(log.tmp / "data")
    assert entry["path"] == str(out) and entry["subjects"] == f"{out}.subjects.parquet"
    assert entry["rows"] == len(lines) and datetime.fromisoformat(entry["at"]).tzinfo is not None


def test_an_erased_subject_is_left_out_counted_and_found_only_in_the_exports_made_before(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.env(monkeypatch)
    before, after = log.tmp / "before.jsonl", log.tmp / "after.jsonl"
    assert _export(log, before, "--format", "trl-conversational").exit_code == 0
    log.erase("bob")
    result = _export(log, after, "--format", "trl-conversational")
    assert result.exit_code == 0, result.output
    written, left_out = log.expected(erased={"bob"})
    assert left_out["erased"] == PER_USER
    assert f"{left_out['erased']} erased rows left out" in result.output
    assert f"{left_out['no_consent']} rows left out without training consent" in result.output
    lines = [json.loads(line) for line in after.read_text().splitlines()]
    assert {line["prompt"][-1]["content"] for line in lines} == written
    assert len(lines) == len(written)
    _no_sealed_or_erased_text(after, {"bob"})
    assert "MARK-bob-" in before.read_text()  # the copy made before the erasure: the registry finds it
    data = log.tmp / "data"
    assert [e["path"] for e in exports_holding(data, [log.subject["bob"]])] == [str(before)]
    assert exports_holding(data, [log.subject["bob"]])[0]["matched"] == [log.subject["bob"]]
    assert [e["path"] for e in exports_holding(data, [log.subject["ann"], "psn_nobody"])] == [str(before), str(after)]
    assert exports_holding(data, ["psn_nobody"]) == []
    sidecar = pq.read_table(f"{after}.subjects.parquet").column("subject").to_pylist()
    assert sorted(sidecar) == sorted(s for u, s in log.subject.items() if u != "bob")


def test_openai_writes_no_sealed_text_and_a_rewritten_export_replaces_its_entry(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.env(monkeypatch)
    out = log.tmp / "oai.jsonl"
    assert _export(log, out, "--format", "openai").exit_code == 0
    log.erase("dee")
    result = _export(log, out, "--format", "openai")
    assert result.exit_code == 0, result.output
    written, _ = log.expected(erased={"dee"})
    assert len(out.read_text().splitlines()) == len(written)
    _no_sealed_or_erased_text(out, {"dee"})
    assert MARK not in (log.tmp / "oai.provenance.jsonl").read_text()
    assert len(read_registry(log.tmp / "data")) == 2
    assert exports_holding(log.tmp / "data", [log.subject["dee"]]) == []  # the file holding dee was replaced


def test_a_sealed_log_without_privacy_settings_fails_naming_the_fix_and_writes_nothing(log: Log) -> None:
    out = log.tmp / "train.jsonl"
    Path(f"{out}.subjects.parquet").write_bytes(b"of an export this one replaces")
    result = _export(log, out)
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert "PREFLOG_PRIVACY__MASTER_KEY_FILE" in message and "sealed" in message
    assert "MARK-" not in message and MARK not in message
    assert not out.exists() and not Path(f"{out}.subjects.parquet").exists()
    assert read_registry(log.tmp / "data") == []


def test_a_log_without_sealed_fields_keeps_its_rows_and_leaves_no_lineage(tmp_path: Path) -> None:
    records = rows([(f"Question {i}?", "yes", "no", "END_USER") for i in range(len(CASES))])
    for r, (inference, feedback, _) in zip(records, CASES, strict=True):
        r["inference_metadata"], r["feedback_metadata"], r["inference_time"] = inference, feedback, OLD
    url = write_table(tmp_path / "log", "pairs", records)
    out = tmp_path / "plain.jsonl"
    args = ["--data-dir", str(tmp_path / "data"), "export", str(out), "--url", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    kept = {f"Question {i}?" for i, (_, _, why) in enumerate(CASES) if why is None}
    assert {json.loads(line)["prompt"] for line in out.read_text().splitlines()} == kept
    no_consent = sum(why == "no_consent" for _, _, why in CASES)
    assert f"{no_consent} rows left out without training consent" in result.output
    assert not Path(f"{out}.subjects.parquet").exists() and not (tmp_path / "data" / REGISTRY).exists()


def test_unpaired_signals_follow_their_data_keys_consent(log: Log) -> None:
    signals, allowed = [], []
    for n, user in enumerate(USERS):
        consent = "analytics" if user == "cyd" else None  # cyd's key: no training
        key_id, aead = log.key(user, consent)
        record = signal(n, f"MARK-{user}-signal", f"MARK-{user}-completion", 0, True)
        record["prompt"], record["completion"] = seal(aead, key_id, record["prompt"]), seal(aead, key_id, "7")
        record["prompt_messages"] = [{"role": "user", "content": record["prompt"]}]
        signals.append(record)
        allowed.append(user != "cyd")
    url = write_table(log.tmp / "log", "unpaired", signals)
    gate = PrivacyGate("unpaired", Keyring(log.store.load(), [log.master], log.store), ("training", "analytics"))
    kept = [r for b in gate(iter_filtered(url, "unpaired", limit="128MB")) for r in b.to_pylist()]
    assert [r["prompt"] for r in kept] == [f"MARK-{u}-signal" for u, ok in zip(USERS, allowed, strict=True) if ok]
    assert gate.left_out == {"erased": 0, "no_consent": 1, "expired": 0} and gate.sealed
    assert {r["subject"] for r in kept} == {log.subject[u] for u in USERS if u != "cyd"}


def test_tail_shows_sealed_values_opened_erased_or_sealed_never_as_ciphertext(log: Log) -> None:
    key_id, aead = log.key("ann")
    record = {"prompt": seal(aead, key_id, "MARK-ann-tail"), "metadata": {f.SUBJECT: log.subject["ann"]},
              "candidates": [{"text": seal(aead, key_id, "MARK-ann-a"), "index": 0}], "n": 3}  # fmt: skip
    ring = Keyring(log.store.load(), [log.master], log.store)
    opened = shown(record, Opener(keyring=ring))
    assert opened == {**record, "prompt": "MARK-ann-tail", "candidates": [{"text": "MARK-ann-a", "index": 0}]}
    hidden = {**record, "prompt": "[sealed]", "candidates": [{"text": "[sealed]", "index": 0}]}
    assert shown(record, Opener(None)) == hidden
    log.erase("ann")
    erased = shown(record, Opener(keyring=Keyring(log.store.load(), [log.master], log.store)))
    assert erased["prompt"] == "[erased]" and MARK not in json.dumps(erased)
