"""The report reads only what consent, retention and erasure allow, counts what it leaves out, and opens sealed logs.

Every expected count is worked out here from the cases themselves (never with preflog's consent SQL), and the
report of a log with rows left out is set against the report of a log holding only the rows it kept.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from preflog.dataset.select import Selection
from preflog.privacy.keys import generate_master
from preflog.privacy.pseudonym import pseudonym
from preflog.privacy.sealer import Privacy as Seal
from preflog.privacy.sealer import Sealer
from preflog.privacy.store import DirKeyStore
from preflog.report.build import report
from preflog.report.data import load
from preflog.report.privacy import Privacy, SealedLogError
from preflog.schemas.events import inference_record
from preflog.settings import Settings

from .dataset_helpers import SAMPLE, signal, write_table
from .report_helpers import NEW, OLD, Log

SECRET = b"0123456789abcdef-report-secret"
#: the report's time: the sample's inference is of 2026-11-01 12:00 UTC, 36 days earlier
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
#: the inference's metadata and the feedback's of each case
CASES: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {}),  # an old record: states nothing
    ({"preflog.consent": "training,analytics"}, {}),
    ({"preflog.consent": "analytics"}, {"preflog.consent": "analytics"}),
    ({"preflog.consent": "training"}, {}),  # analytics not allowed
    ({"preflog.consent": ""}, {}),  # stated: no purpose at all
    ({}, {"preflog.consent": "training"}),  # the judge withheld analytics
    ({"preflog.retention_days": "3650"}, {}),
    ({"preflog.retention_days": "30"}, {}),  # ran out on 2026-12-01
    ({"preflog.retention_days": "30", "preflog.consent": "analytics"}, {}),
    ({"preflog.retention_days": "40"}, {}),  # runs out on 2026-12-11
    ({"preflog.retention_days": "0.5", "preflog.consent": "training"}, {}),  # both: the first reason counts
    ({"preflog.retention_days": "not a number"}, {}),  # never runs out, never fails the report
]


def _why(inference: dict[str, str], feedback: dict[str, str], unstated: tuple[str, ...], now: datetime) -> str | None:
    """Why the report must leave a row out, worked out by hand (None: kept)."""
    stated = inference.get("preflog.consent")
    allowed = unstated if stated is None else tuple(p for p in stated.split(",") if p)
    judge = feedback.get("preflog.consent")
    if "analytics" not in allowed or (judge is not None and "analytics" not in judge.split(",")):
        return "no_consent"
    try:
        days = float(inference["preflog.retention_days"])
    except (KeyError, ValueError):  # none stated, or no number: never runs out
        return None
    age = (now - SAMPLE["inference_time"]) / timedelta(days=1)
    return "expired" if days <= age else None


def _consent_log(root: Path, keep: set[int] | None = None, copies: int = 3, signals: int = 4) -> str:
    """A pair per case (times ``copies``), each NEW against OLD on its own request, and ``signals`` ratings.

    ``keep``: write only these pairs (their metadata dropped): the log of what a report keeps.
    """
    log = Log()
    for i, (inference, feedback) in enumerate(CASES * copies):
        new, old = (0, NEW, "n" * (10 + i)), (1, OLD, "o" * (12 + i % 5))
        log.pair(i, new if i % 3 else old, old if i % 3 else new, minute=i)
        log.pairs[-1]["inference_metadata"], log.pairs[-1]["feedback_metadata"] = inference, feedback
    if keep is not None:
        log.pairs = [dict(p, inference_metadata={}, feedback_metadata={}) for i, p in enumerate(log.pairs) if i in keep]
    if signals:
        write_table(root, "unpaired", [signal(i, f"rated {i}?", "answer", 0, i % 2 == 0) for i in range(signals)])
    return log.write(root)


def _expected(unstated: tuple[str, ...], now: datetime, copies: int = 3) -> tuple[set[int], dict[str, int]]:
    kept, left_out = set(), {"erased": 0, "no_consent": 0, "expired": 0}
    for i, (inference, feedback) in enumerate(CASES * copies):
        reason = _why(inference, feedback, unstated, now)
        if reason is None:
            kept.add(i)
        else:
            left_out[reason] += 1
    return kept, left_out


#: the figures by subject: the plain copies of a sealed log name no subject (their context is the sample's), so
#: these differ by design; test_report_cohorts checks them
BY_SUBJECT = ("subject_length_preference", "subject_model_agreement")


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, str]]:
    summary = json.loads((folder / "summary.json").read_text())
    summary["figures"] = {k: v for k, v in summary["figures"].items() if k not in BY_SUBJECT}
    figures = {p.name: p.read_text() for p in sorted((folder / "figures").glob("*.json")) if p.stem not in BY_SUBJECT}
    return summary, figures


def _same_figures(a: Path, b: Path) -> None:
    """The two reports' figures and counts are the same (their logs, times and privacy entries aside)."""
    (first, first_figures), (second, second_figures) = _read(a), _read(b)
    assert first["figures"] == second["figures"]
    assert first_figures == second_figures
    for key in ("pairs", "from", "to", "selection"):
        assert first["meta"][key] == second["meta"][key], key


def _settings(**privacy: Any) -> Settings:
    return Settings(privacy=privacy, data_dir=Path("/nonexistent-preflog-test"))


@pytest.mark.parametrize("unstated", [("training", "analytics"), ("training",)])
def test_rows_without_consent_to_analytics_or_past_retention_are_left_out_and_counted(
    tmp_path: Path, unstated: tuple[str, ...]
) -> None:
    url = _consent_log(tmp_path / "log")
    report(url, tmp_path / "out", Selection(), rounds=20, settings=_settings(unstated_consent=list(unstated)), now=NOW)
    kept, left_out = _expected(unstated, NOW)
    signals = 0 if "analytics" in unstated else 4  # the unpaired table states no consent: unstated consent applies
    summary, _ = _read(tmp_path / "out")
    privacy = summary["meta"]["privacy"]
    assert privacy["left_out_by_table"] == {"pairs": left_out, "signals": {**dict.fromkeys(left_out, 0),
                                                                           "no_consent": signals}}  # fmt: skip
    assert privacy["left_out"] == {**left_out, "no_consent": left_out["no_consent"] + signals}
    assert privacy["purpose"] == "analytics" and privacy["unstated_consent"] == list(unstated)
    assert not privacy["opened"] and summary["meta"]["pairs"] == len(kept)
    assert left_out["expired"] and left_out["no_consent"]  # both reasons are met
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="privacy"' in html and f"{left_out['expired']} past their retention" in html
    # the figures are those of a log holding only the rows the report kept
    plain = _consent_log(tmp_path / "kept", keep=kept, signals=0 if signals else 4)
    report(plain, tmp_path / "kept-out", Selection(), rounds=20, now=NOW)
    assert "privacy" not in _read(tmp_path / "kept-out")[0]["meta"]
    _same_figures(tmp_path / "out", tmp_path / "kept-out")


def test_retention_is_measured_to_the_report_s_time(tmp_path: Path) -> None:
    url = _consent_log(tmp_path / "log", copies=1, signals=0)
    later = NOW + timedelta(days=5)  # the 40 days have run out too
    counts = {}
    for name, at in (("now", NOW), ("later", later)):
        report(url, tmp_path / name, Selection(), rounds=10, now=at)
        counts[name] = _read(tmp_path / name)[0]["meta"]["privacy"]["left_out"]
    assert counts["now"] == _expected(("training", "analytics"), NOW, copies=1)[1]
    assert counts["later"] == _expected(("training", "analytics"), later, copies=1)[1]
    assert counts["later"]["expired"] == counts["now"]["expired"] + 1


def test_a_log_without_privacy_facts_reports_as_before(tmp_path: Path) -> None:
    url = _consent_log(tmp_path / "log", keep=set(range(len(CASES))), copies=1)
    report(url, tmp_path / "out", Selection(), rounds=10, now=NOW)
    summary, _ = _read(tmp_path / "out")
    assert "privacy" not in summary["meta"] and summary["meta"]["generated_at"] == "2026-12-07T12:00:00+00:00"
    assert 'id="privacy"' not in (tmp_path / "out" / "report.html").read_text()


# -- sealed logs ------------------------------------------------------------------------------------------------

#: each person's consent and retention, and whether they are erased before the report
PEOPLE: dict[str, tuple[Seal, bool]] = {
    "ann": (Seal(), False),
    "bob": (Seal(consent=("training",)), False),  # no_consent
    "cy": (Seal(retention_days=30), False),  # expired
    "dee": (Seal(consent=("training", "analytics")), True),  # erased
    "eve": (Seal(consent=("training",)), True),  # erased, and without consent: erased is the first reason
}
PER_PERSON = 6
SIGNALS = {"ann": 3, "dee": 2}


class Sealed:
    """A log of sealed pairs and signals (and a few old plain ones), and the same log's kept rows in plain text."""

    def __init__(self, root: Path, signals_only: bool = False) -> None:
        self.master, self.keys = root / "master.key", root / "keys"
        store = DirKeyStore(self.keys)
        sealer = Sealer(SECRET, generate_master(self.master), store)
        sealed, plain, kept = Log(), Log(), Log()
        self.left_out = {"pairs": dict.fromkeys(("erased", "no_consent", "expired"), 0),
                         "signals": dict.fromkeys(("erased", "no_consent", "expired"), 0)}  # fmt: skip
        request = 0
        self.markers: list[str] = []
        for person, (seal, erased) in PEOPLE.items():
            reason = "erased" if erased else _why(_stated(seal), {}, ("training", "analytics"), NOW)
            for k in range(PER_PERSON):
                texts = (f"MARK-{person}-{k}-prompt", f"MARK-{person}-{k}-é" * (1 + k), f"MARK-{person}-{k}-o")
                self.markers += list(texts)
                inf = sealer.inference(_inference(request, person, texts), seal)
                new, old = (0, NEW, texts[1]), (1, OLD, texts[2])
                chosen, rejected = (new, old) if k % 4 else (old, new)
                for log in (plain, kept) if reason is None else (plain,):
                    log.pair(request, chosen, rejected, minute=request)
                    log.pairs[-1].update(prompt=texts[0], **_ids(request))
                opened = [(i, m, inf["candidates"][i]["text"]) for i, m, _ in (chosen, rejected)]
                sealed.pair(request, opened[0], opened[1], minute=request)
                sealed.pairs[-1].update(prompt=inf["prompt"], prompt_messages=inf["prompt_messages"],
                                        inference_metadata=inf["metadata"], feedback_metadata={},
                                        **_ids(request))  # fmt: skip
                if reason is not None:
                    self.left_out["pairs"][reason] += 1
                request += 1
        for log in (sealed, plain, kept):  # logged before privacy was on
            log.pair(request, (0, NEW, "MARK-old-answer-a"), (1, OLD, "MARK-old-b"), minute=request)
            log.pairs[-1].update(**_ids(request))
        signal_rows: list[dict[str, Any]] = []
        kept_signals: list[dict[str, Any]] = []
        for person, n in SIGNALS.items():
            seal, erased = PEOPLE[person]
            for k in range(n):
                texts = (f"MARK-{person}-signal-{k}", f"MARK-{person}-rated-{k}", "unused")
                inf = sealer.inference(_inference(1000 + len(signal_rows), person, texts), seal)
                row = signal(len(signal_rows), texts[0], texts[1], 0, k % 2 == 0)
                signal_rows.append({**row, "prompt": inf["prompt"], "completion": inf["candidates"][0]["text"],
                                    "prompt_messages": inf["prompt_messages"]})  # fmt: skip
                if erased:
                    self.left_out["signals"]["erased"] += 1
                else:
                    kept_signals.append(row)
        for person in ("dee", "eve"):
            store.erase(store.load().of_subject(pseudonym(person, SECRET)), f"erasure-{person}")
        self.url = (plain if signals_only else sealed).write(root / "sealed")
        write_table(root / "sealed", "unpaired", signal_rows)
        self.plain_url = (plain if signals_only else kept).write(root / "kept")
        write_table(root / "kept", "unpaired", kept_signals)
        if signals_only:
            self.left_out["pairs"] = dict.fromkeys(self.left_out["pairs"], 0)

    def settings(self, enabled: bool = False, keys: Path | None = None) -> Settings:
        return _settings(enabled=enabled, keys_dir=str(keys or self.keys), master_key_file=str(self.master))


def _ids(request: int) -> dict[str, Any]:
    """A pair's ids and latency from its request (the same in every log that holds it)."""
    return {
        "pair_id": f"00000000-0000-4000-8000-{request:012d}",
        "feedback_id": f"00000000-0000-4000-9000-{request:012d}",
        "join_latency_ms": 1000 * (request % 7 + 1),
    }


def _stated(seal: Seal) -> dict[str, str]:
    out = {}
    if seal.consent is not None:
        out["preflog.consent"] = ",".join(seal.consent)
    if seal.retention_days is not None:
        out["preflog.retention_days"] = str(seal.retention_days)
    return out


def _inference(request: int, person: str, texts: tuple[str, str, str]) -> dict[str, Any]:
    return inference_record({
        "request_id": str(uuid.UUID(int=request + 1)),
        "event_time": "2026-11-01T12:00:00Z",
        "prompt": texts[0],
        "prompt_messages": [{"role": "user", "content": texts[0]}],
        "candidates": [texts[1], texts[2]],
        "model": "acme",
        "context": {"user_id": person, "tenant": "acme"},
        "metadata": {"ticket": f"MARK-{person}-ticket"},
    })  # fmt: skip


def _texts_in(folder: Path) -> str:
    """Everything a report wrote, as text: the page, the summary, and every figure's JSON and Parquet rows."""
    texts = [p.read_text() for p in sorted(folder.rglob("*")) if p.suffix in (".html", ".json")]
    texts += [str(pq.read_table(p).to_pylist()) for p in sorted(folder.rglob("*.parquet"))]
    return "\n".join(texts)


@pytest.mark.parametrize("enabled", [False, True], ids=["detected", "privacy-on"])
def test_a_sealed_log_is_read_opened_and_erased_rows_are_left_out_and_counted(tmp_path: Path, enabled: bool) -> None:
    log = Sealed(tmp_path)
    settings = log.settings(enabled=enabled)
    report(log.url, tmp_path / "out", Selection(), rounds=20, settings=settings, now=NOW)
    privacy = _read(tmp_path / "out")[0]["meta"]["privacy"]
    assert privacy["opened"] and privacy["left_out_by_table"] == log.left_out
    assert log.left_out["pairs"]["erased"] == 2 * PER_PERSON and log.left_out["signals"]["erased"] == SIGNALS["dee"]
    # the figures of the rows kept, in plain text: the answers' lengths are the texts', never the ciphertext's
    report(log.plain_url, tmp_path / "kept-out", Selection(), rounds=20, now=NOW)
    _same_figures(tmp_path / "out", tmp_path / "kept-out")
    written = _texts_in(tmp_path / "out")
    assert "pf1:" not in written and not any(m in written for m in log.markers)  # no text reaches the report
    assert "MARK" not in written


def test_the_report_s_lengths_are_of_the_opened_texts(tmp_path: Path) -> None:
    log = Sealed(tmp_path)
    inputs = load(log.url, Selection(), privacy=Privacy.of(log.settings(), NOW))
    try:
        lengths = inputs.rows("SELECT pair_id, chosen_len, rejected_len FROM pairs ORDER BY pair_id")
    finally:
        inputs.close()
    plain = load(log.plain_url, Selection(), privacy=Privacy.of(None, NOW))
    try:
        expected = plain.rows("SELECT pair_id, chosen_len, rejected_len FROM pairs ORDER BY pair_id")
    finally:
        plain.close()
    assert lengths == expected and any(n > 20 for _, n, _ in lengths)


def test_sealed_signals_are_opened_even_when_no_pair_is_sealed(tmp_path: Path) -> None:
    log = Sealed(tmp_path, signals_only=True)
    report(log.url, tmp_path / "out", Selection(), rounds=10, settings=log.settings(), now=NOW)
    privacy = _read(tmp_path / "out")[0]["meta"]["privacy"]
    assert privacy["left_out_by_table"]["signals"] == {"erased": SIGNALS["dee"], "no_consent": 0, "expired": 0}
    report(log.plain_url, tmp_path / "kept-out", Selection(), rounds=10, now=NOW)
    _same_figures(tmp_path / "out", tmp_path / "kept-out")


@pytest.mark.parametrize("signals_only", [False, True])
def test_a_sealed_log_read_without_keys_fails_naming_the_settings(tmp_path: Path, signals_only: bool) -> None:
    log = Sealed(tmp_path, signals_only=signals_only)
    with pytest.raises(SealedLogError, match="PREFLOG_PRIVACY__MASTER_KEY_FILE") as failed:
        report(log.url, tmp_path / "out", Selection(), rounds=10, settings=_settings(), now=NOW)
    assert "PREFLOG_PRIVACY__KEYS_DIR" in str(failed.value) and "MARK" not in str(failed.value)
    assert not (tmp_path / "out").exists()  # nothing written, nothing computed over ciphertext


def test_a_lost_key_is_an_error_never_an_erasure(tmp_path: Path) -> None:
    log = Sealed(tmp_path)
    settings = log.settings(keys=tmp_path / "keys-restored-empty")
    with pytest.raises(SealedLogError, match="restore it from its backup") as failed:
        report(log.url, tmp_path / "out", Selection(), rounds=10, settings=settings, now=NOW)
    assert "MARK" not in str(failed.value) and "pf1:" not in str(failed.value)


def test_the_command_prints_what_it_left_out_and_names_the_fix_for_a_sealed_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    for name in [k for k in os.environ if k.startswith("PREFLOG_")]:
        monkeypatch.delenv(name)
    url = _consent_log(tmp_path / "log", copies=1, signals=2)
    runner = CliRunner()
    env = {"PREFLOG_DATA_DIR": str(tmp_path / "data"), "PREFLOG_PRIVACY__UNSTATED_CONSENT": '["training"]'}
    result = runner.invoke(app, ["report", str(tmp_path / "out"), "--url", url, "--bootstrap", "10"], env=env)
    assert result.exit_code == 0, result.output
    assert "rows left out for privacy" in result.output
    said = json.loads((tmp_path / "out" / "summary.json").read_text())["meta"]["privacy"]["left_out"]
    assert f"{said['no_consent']} without consent" in result.output and said["no_consent"] > 2
    log = Sealed(tmp_path / "sealed")
    failed = runner.invoke(app, ["report", str(tmp_path / "out2"), "--url", log.url],
                           env={"PREFLOG_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert isinstance(failed.exception, SealedLogError) and "PREFLOG_PRIVACY__" in str(failed.exception)
    opened = runner.invoke(app, ["report", str(tmp_path / "out3"), "--url", log.url, "--bootstrap", "10"], env={
        "PREFLOG_DATA_DIR": str(tmp_path / "data"), "PREFLOG_PRIVACY__KEYS_DIR": str(log.keys),
        "PREFLOG_PRIVACY__MASTER_KEY_FILE": str(log.master)})  # fmt: skip
    assert opened.exit_code == 0, opened.output
    assert f"{2 * PER_PERSON + SIGNALS['dee']} erased" in opened.output and "MARK" not in opened.output
