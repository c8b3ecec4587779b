"""Conversation histories: earlier turns' consent, retention and erasure; empty answers; ``preflog export``.

A history copies the texts of earlier turns: a turn whose consent or retention does not allow the purpose must not
reach a training set through a later turn's history (nor an erased one). Expected histories are built by the
``Chat`` helper from what was sent, never by the code under test.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from preflog.cli.root import app
from preflog.dataset.consent import Purpose
from preflog.privacy import fields as f
from preflog.schemas.events import inference_record
from preflog.sinks.history import Histories, Turn, continuation
from preflog.sinks.read import read_pairs
from preflog.sinks.stream import stream_pairs

from ..conftest import inference
from .test_history import Chat, _pairs, _plain, _turns

TRAINING = Purpose("training", ("training", "analytics"), now=datetime(2026, 12, 7, tzinfo=timezone.utc))
SECRET = b"history-privacy-secret-0123456789"


pytestmark = pytest.mark.usefixtures("no_privacy_env")


def _chat(consents: list[str | None], retention: list[str | None] | None = None, said: str = "SECRET") -> Chat:
    """A conversation by reference whose turn k states ``consents[k]`` (None: nothing) and ``retention[k]``."""
    chat = Chat()
    for k, consent in enumerate(consents):
        event = chat.turn(f"{said}-{k}")
        days = (retention or [None] * len(consents))[k]
        stated = {f.CONSENT: consent} if consent is not None else {}
        event["metadata"] = {**event["metadata"], **stated, **({f.RETENTION: days} if days is not None else {})}
    return chat


def _log(root: Path, *chats: Chat) -> str:
    sent = [e for c in chats for e in c.sent]
    _turns(root, sent)
    return _pairs(root, sent)


# --- F3: an earlier turn's consent and retention -----------------------------------------------------------


def _turn(rid: str, previous: str | None = None, **facts: Any) -> Turn:
    continues = {0: [{"role": "assistant", "content": f"answer of {rid}"}]}
    return Turn(rid, "c", previous, 0 if previous else None, [{"role": "user", "content": rid}], continues, **facts)


def test_a_purpose_refuses_an_earlier_turn_it_does_not_allow_naming_ids_only() -> None:
    old = datetime(2026, 11, 1, tzinfo=timezone.utc)
    cases: dict[str, tuple[dict[str, Any], str | None]] = {
        "no facts": ({}, None),
        "analytics only": ({"consent": "analytics"}, "no_consent_turn"),
        "none allowed": ({"consent": ""}, "no_consent_turn"),
        "expired": ({"retention_days": "1", "event_time": old}, "expired_turn"),
        "kept long": ({"retention_days": "36500", "event_time": old}, None),
        "not a number": ({"retention_days": "soon", "event_time": old}, None),
        "erased": ({"erased": True}, "erased_turn"),
        "no consent, expired": ({"consent": "analytics", "retention_days": "1", "event_time": old}, "no_consent_turn"),
    }
    for name, (facts, reason) in cases.items():
        turns = {"t0": _turn("t0", **facts), "t1": _turn("t1", "t0")}
        got = Histories(turns, TRAINING).full("t1")
        if reason is None:
            assert isinstance(got, list) and len(got) == 3, name
        else:
            assert got == f"{reason}: turn t0 " + {"no_consent_turn": "does not allow training",
                                                   "expired_turn": "is past its retention",
                                                   "erased_turn": "was erased"}[reason], name  # fmt: skip
        assert isinstance(Histories(turns).full("t1"), str) == (reason == "erased_turn"), name  # no purpose
    strict = Purpose("training", ("analytics",), now=TRAINING.now)  # a turn stating nothing allows what unstated does
    assert Histories({"t0": _turn("t0"), "t1": _turn("t1", "t0")}, strict).full("t1") == (
        "no_consent_turn: turn t0 does not allow training"
    )


def test_a_build_keeps_an_unconsented_turns_text_out_of_later_histories_and_counts_each_row_once(
    tmp_path: Path,
) -> None:
    from preflog.dataset.build import build
    from preflog.dataset.select import Selection

    # turns 0 and 1 allow analytics only: their own pairs are privacy's (no_consent); turn 2 allows training but
    # continues them: a history reason, counted once; turn 3 continues turn 2 and so also turn 1
    refused = _chat(["analytics", "analytics", "training,analytics", "training"], said="NOCONSENT")
    expired = _chat([None, None], retention=["1", None], said="EXPIRED")  # turn 0 of 2026-11-01: kept one day
    fine = _chat(["training", None, "training,analytics"], said="FINE")
    url = _log(tmp_path / "log", refused, expired, fine)
    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0))
    assert m["privacy"] == {"erased": 0, "no_consent": 2, "expired": 1}
    assert m["left_out"]["history"] == {"expired_turn": 1, "no_consent_turn": 2}
    text = (tmp_path / "ds" / "v1" / "trl-conversational" / "train.jsonl").read_text()
    assert "NOCONSENT" not in text and "EXPIRED" not in text
    prompts = {json.loads(x)["request_id"]: json.loads(x)["prompt"] for x in text.splitlines()}
    assert sorted(prompts) == sorted(e["request_id"] for e in fine.sent)
    last = [{"role": x["role"], "content": x["content"]} for x in _plain(fine.expected[2]) or []]
    assert [{"role": x["role"], "content": x["content"]} for x in prompts[fine.sent[2]["request_id"]]] == last


def test_stream_pairs_checks_earlier_turns_for_its_purpose_and_read_pairs_returns_every_history(
    tmp_path: Path,
) -> None:
    from preflog.sinks.storage import Storage

    from .test_stream_pairs import _write

    chat = _chat(["analytics", "training,analytics"])
    _turns(tmp_path, chat.sent)
    events = iter(chat.sent)

    def as_turn(record: dict[str, Any]) -> None:
        event = next(events)
        record.update(request_id=event["request_id"], conversation=event["conversation"], feedback_metadata={})
        record.update(
            prompt_messages=event["prompt_messages"], prompt=event["prompt"], inference_metadata=event["metadata"]
        )

    url = f"file://{tmp_path}"
    _write(Storage(url), 0, 0, 1, change=as_turn)
    first, second = (e["request_id"] for e in chat.sent)
    stream = stream_pairs(url, follow=False, keys="sealed")
    got = {p["request_id"]: p for p in stream}
    assert first not in got and stream.left_out == {"no_consent": 1}  # its own consent: privacy's
    assert got[second]["history_problem"] == f"no_consent_turn: turn {first} does not allow training"
    assert "SECRET-0" not in str(got[second]["prompt_messages"])  # the messages it sent, never turn 0's
    formatted = stream_pairs(url, follow=False, keys="sealed", format="trl-conversational")
    assert list(formatted) == [] and formatted.left_out == {"no_consent": 1, "history: no_consent_turn": 1}
    analytics = {p["request_id"]: p for p in stream_pairs(url, follow=False, keys="sealed", purpose="analytics")}
    assert analytics[second]["history_problem"] is None
    assert analytics[second]["prompt_messages"] == _plain(chat.expected[1])
    unchecked = {r["request_id"]: r for r in read_pairs(url).to_pylist()}  # no purpose: every row, as documented
    assert unchecked[second]["history_problem"] is None
    assert unchecked[second]["prompt_messages"] == _plain(chat.expected[1])


def _sealed_chats(tmp: Path) -> tuple[Any, Any, Any, list[Chat], list[list[dict[str, Any]]]]:
    """Two sealed conversations: alice's three turns, and one whose turn 0 is carol's and turns 1-2 dan's."""
    from preflog.privacy.keys import generate_master
    from preflog.privacy.sealer import Privacy, Sealer
    from preflog.privacy.store import DirKeyStore

    master = generate_master(tmp / "master.key")
    store = DirKeyStore(tmp / "keys")
    sealer = Sealer(SECRET, master, store)
    alice, mixed = Chat(), Chat()
    for k in range(3):
        alice.turn(f"ALICE-{k}")
        mixed.turn(f"{'CAROL' if k == 0 else 'DAN'}-{k}")
    sealed = [
        [sealer.inference(e, Privacy(subject="alice")) for e in alice.sent],
        [sealer.inference(e, Privacy(subject="carol" if k == 0 else "dan")) for k, e in enumerate(mixed.sent)],
    ]
    return master, store, sealer, [alice, mixed], sealed


def test_an_erased_subjects_rows_count_as_erased_and_a_live_turn_continuing_an_erased_one_as_erased_turn(
    tmp_path: Path,
) -> None:
    from preflog.dataset.build import build
    from preflog.dataset.select import Selection
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.pseudonym import pseudonym

    master, store, _, _, sealed = _sealed_chats(tmp_path)
    events = sealed[0] + sealed[1]
    _turns(tmp_path / "log", events)
    url = _pairs(tmp_path / "log", events)
    for who in ("alice", "carol"):
        store.erase(store.load().of_subject(pseudonym(who, SECRET)), f"erasure-{who}")
    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0), keyring=Keyring(store.load(), [master], store))
    # alice's 3 rows and carol's turn 0 are erased themselves: privacy's count, never a history reason too;
    # dan's turn 1 continues carol's erased turn (and turn 2 continues turn 1): erased_turn
    assert m["privacy"]["erased"] == 4
    assert m["left_out"]["history"] == {"erased_turn": 2}
    assert m["rows"]["train"] == 0


# --- F6: a candidate with empty messages continues with its text -------------------------------------------


def test_a_candidate_with_empty_messages_continues_with_its_text(tmp_path: Path) -> None:
    assert continuation({"text": "Hello B", "messages": []}) == [{"role": "assistant", "content": "Hello B"}]
    assert continuation({"text": "x", "messages": None}) == [{"role": "assistant", "content": "x"}]
    record = inference_record(inference(candidates=[{"text": "A", "messages": []}, "B"]))
    assert record["candidates"][0]["messages"] is None  # normalised: no messages, the answer is the text
    # a turn logged with [] (before the normalisation) still continues with the text
    rid, conversation = str(uuid.uuid4()), f"conv-{uuid.uuid4().hex[:8]}"
    t0 = inference_record(inference(
        request_id=rid, prompt=None, prompt_messages=[{"role": "user", "content": "hi"}],
        candidates=["Hello A", "Hello B"], conversation={"id": conversation, "turn": 0},
    ))  # fmt: skip
    t0["candidates"] = [{**c, "messages": []} for c in t0["candidates"]]
    t1 = inference_record(inference(
        request_id=str(uuid.uuid4()), prompt=None, prompt_messages=[{"role": "user", "content": "and?"}],
        candidates=["x", "y"],
        conversation={"id": conversation, "turn": 1, "previous_request_id": rid, "previous_candidate": 1},
    ))  # fmt: skip
    url = _log(tmp_path, _Sent([t0, t1]))
    row = {r["request_id"]: r for r in read_pairs(url).to_pylist()}[t1["request_id"]]
    assert row["history_problem"] is None
    assert [(m["role"], m["content"]) for m in row["prompt_messages"]] == [
        ("user", "hi"), ("assistant", "Hello B"), ("user", "and?"),
    ]  # fmt: skip


class _Sent(Chat):
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        super().__init__()
        self.sent = sent


# --- F1: preflog export writes whole histories ------------------------------------------------------------


def _export(tmp: Path, url: str, fmt: str, *env: tuple[str, str]) -> tuple[Any, list[dict[str, Any]]]:
    out = tmp / f"{fmt}-{uuid.uuid4().hex[:6]}.jsonl"
    args = ["--data-dir", str(tmp / "data"), "export", str(out), "--format", fmt, "--url", url]
    result = CliRunner().invoke(app, [*args, "--memory-limit", "128MB"], env=dict(env))
    assert result.exit_code == 0, result.output
    return result, [json.loads(line) for line in out.read_text().splitlines()]


def test_export_writes_whole_histories_and_leaves_out_and_counts_what_does_not_resolve(tmp_path: Path) -> None:
    chat, lost, refused = Chat(), Chat(), _chat(["analytics", "training"], said="NOCONSENT")
    for k in range(3):
        chat.turn("say", tools=k == 1)
        lost.turn("ask")
    events = [*chat.sent, lost.sent[0], lost.sent[2], *refused.sent]  # lost's turn 1 never reached the turns table
    _turns(tmp_path / "log", events)
    url = _pairs(tmp_path / "log", [*chat.sent, *lost.sent, *refused.sent])
    result, lines = _export(tmp_path, url, "trl-conversational")
    prompts = {line["request_id"]: line["prompt"] for line in lines}
    assert sorted(prompts) == sorted([*(e["request_id"] for e in chat.sent), lost.sent[0]["request_id"],
                                      lost.sent[1]["request_id"]])  # fmt: skip
    for k, event in enumerate(chat.sent):
        want = [{"role": m["role"], "content": m["content"]} for m in _plain(chat.expected[k]) or []]
        assert [{"role": m["role"], "content": m["content"]} for m in prompts[event["request_id"]]] == want, k
    assert "left out 1 row(s): history: missing_turn" in result.output  # lost's turn 2
    assert "left out 1 row(s): history: no_consent_turn" in result.output  # refused's turn 1
    assert "1 rows left out without training consent" in result.output  # refused's turn 0, its own consent
    assert "NOCONSENT" not in json.dumps(lines)
    _, trl = _export(tmp_path, url, "trl")  # the text formats take the whole history too
    last = {line["request_id"]: line["prompt"] for line in trl}[chat.sent[2]["request_id"]]
    assert all(m["content"] in last for m in chat.expected[2])


def test_export_opens_a_sealed_logs_turns_and_leaves_out_a_turn_continuing_an_erased_one(tmp_path: Path) -> None:
    from preflog.privacy.envelope import MARK
    from preflog.privacy.pseudonym import pseudonym

    _, store, _, chats, sealed = _sealed_chats(tmp_path)
    events = sealed[0] + sealed[1]
    _turns(tmp_path / "log", events)
    url = _pairs(tmp_path / "log", events)
    env = (("PREFLOG_PRIVACY__MASTER_KEY_FILE", str(tmp_path / "master.key")),
           ("PREFLOG_PRIVACY__KEYS_DIR", str(tmp_path / "keys")))  # fmt: skip
    _, lines = _export(tmp_path, url, "trl-conversational", *env)
    prompts = {line["request_id"]: line["prompt"] for line in lines}
    assert len(prompts) == 6 and MARK not in json.dumps(lines)
    want = [{"role": m["role"], "content": m["content"]} for m in _plain(chats[0].expected[2]) or []]
    assert [{"role": m["role"], "content": m["content"]} for m in prompts[sealed[0][2]["request_id"]]] == want
    store.erase(store.load().of_subject(pseudonym("carol", SECRET)), "erasure-carol")
    result, lines = _export(tmp_path, url, "trl-conversational", *env)
    assert sorted(line["request_id"] for line in lines) == sorted(e["request_id"] for e in sealed[0])
    assert "1 erased rows left out" in result.output  # carol's turn 0
    assert "left out 2 row(s): history: erased_turn" in result.output  # dan's turns, continuing it
    assert "CAROL" not in json.dumps(lines) and "DAN" not in json.dumps(lines)


def test_retention_is_measured_as_a_build_measures_it() -> None:
    now = datetime(2026, 12, 7, tzinfo=timezone.utc)
    assert f.expired("1", now - timedelta(days=1), now) and not f.expired("1", now - timedelta(hours=23), now)
    assert not f.expired("inf", now - timedelta(days=10**5), now) and not f.expired("nan", now, now)
    assert not f.expired(None, now, now) and not f.expired("1", None, now)
    assert f.expired("1", (now - timedelta(days=2)).replace(tzinfo=None), now)  # a naive time is UTC
