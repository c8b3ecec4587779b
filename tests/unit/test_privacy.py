"""Pseudonyms, sealing, keys and opening: the privacy building blocks without a broker (keys in a directory)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from preflog.privacy import fields as f
from preflog.privacy.envelope import SealError, key_of, open_text, sealed
from preflog.privacy.keyring import Keyring, open_table
from preflog.privacy.keys import DataKey, KeyError_, MasterKey, generate_master, pick
from preflog.privacy.pseudonym import is_pseudonym, pseudonym, request_subject
from preflog.privacy.sealer import Privacy, Sealer, privacy_fields
from preflog.privacy.store import DirKeyStore, DirWatch
from preflog.privacy.views import opened_view
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError

SECRET = b"0123456789abcdef-test-secret"
MARKERS = ("MARK-prompt", "MARK-answer-a", "MARK-answer-b", "MARK-system", "MARK-meta", "MARK-why", "MARK-fbmeta")


def _inference(rid: str, user: str | None = "alice@example.org") -> dict:
    return inference_record({
        "request_id": rid,
        "event_time": "2026-12-01T10:00:00Z",
        "prompt": "MARK-prompt: how do I reset my password?",
        "prompt_messages": [{"role": "system", "content": "MARK-system"}, {"role": "user", "content": "MARK-prompt"}],
        "candidates": ["MARK-answer-a one", {"text": "MARK-answer-b two", "messages": [
            {"role": "assistant", "content": "MARK-answer-b two"}]}],
        "model": "acme-chat",
        "context": {"user_id": user, "session_id": "sess-42", "tenant": "acme"},
        "metadata": {"ticket": "MARK-meta"},
    })  # fmt: skip


def _feedback(rid: str, source: dict) -> dict:
    return feedback_record({
        "feedback_id": str(uuid.uuid4()), "request_id": rid, "event_time": "2026-12-01T10:01:00Z",
        "kind": "PAIRWISE", "pairwise": {"chosen": 1, "rejected": 0}, "source": source,
        "rationale": "MARK-why", "metadata": {"note": "MARK-fbmeta"},
    })  # fmt: skip


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Sealer, DirKeyStore, MasterKey]:
    master = generate_master(tmp_path / "master.key")
    store = DirKeyStore(tmp_path / "keys")
    return Sealer(SECRET, master, store), store, master


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(k) + _texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


def _pairs_table(inference: dict, feedback: dict) -> pa.Table:
    """A pairs-shaped table as the processor would splice it from the two sealed events."""
    c = inference["candidates"]
    return pa.table({
        "pair_id": [str(uuid.uuid4())],
        "prompt": [inference["prompt"]],
        "prompt_messages": [inference["prompt_messages"]],
        "chosen": [c[1]["text"]], "rejected": [c[0]["text"]],
        "chosen_messages": [c[1]["messages"]], "rejected_messages": [c[0]["messages"]],
        "rationale": [feedback["rationale"]],
        "inference_metadata": pa.array([list(inference["metadata"].items())], pa.map_(pa.string(), pa.string())),
        "feedback_metadata": pa.array([list(feedback["metadata"].items())], pa.map_(pa.string(), pa.string())),
    })  # fmt: skip


def test_pseudonyms_are_keyed_stable_and_idempotent() -> None:
    p = pseudonym("alice", SECRET)
    assert is_pseudonym(p) and p == pseudonym("alice", SECRET) and pseudonym(p, SECRET) == p
    assert p != pseudonym("alice", SECRET + b"x") and p != pseudonym("alice2", SECRET)
    rid = str(uuid.uuid4())
    assert request_subject(rid, SECRET) == request_subject(rid.upper(), SECRET) != p


def test_sealed_inference_and_feedback_hold_no_marker_and_no_raw_id(parts: tuple) -> None:
    sealer, _, _ = parts
    rid = str(uuid.uuid4())
    inf = sealer.inference(_inference(rid), Privacy(consent=("training",), retention_days=30))
    fb = sealer.feedback(_feedback(rid, {"type": "HUMAN_ANNOTATOR", "id": "annotator-7"}), Privacy())
    for record in (inf, fb):
        text = " ".join(_texts(record))
        assert not any(m in text for m in MARKERS)
        assert "alice@example.org" not in text and "sess-42" not in text and "annotator-7" not in text
    subject = pseudonym("alice@example.org", SECRET)
    assert inf["context"]["user_id"] == subject and inf["context"]["tenant"] == "acme"
    assert inf["metadata"][f.SUBJECT] == subject and inf["metadata"][f.CONSENT] == "training"
    assert inf["metadata"][f.RETENTION] == "30" and sealed(inf["prompt"])
    assert fb["metadata"][f.SUBJECT] == subject  # the inference this producer sealed names the feedback's subject
    assert fb["source"]["id"] == pseudonym("annotator-7", SECRET)


def test_a_model_judge_keeps_its_id_and_an_anonymous_request_is_its_own_subject(parts: tuple) -> None:
    sealer, _, _ = parts
    rid = str(uuid.uuid4())
    judge = {"type": "REWARD_MODEL", "id": "rm-3", "name": "rm", "version": "1"}
    fb = sealer.feedback(_feedback(rid, judge), Privacy())
    assert fb["source"]["id"] == "rm-3"
    assert fb["metadata"][f.SUBJECT] == request_subject(rid, SECRET)
    inf = sealer.inference(_inference(str(uuid.uuid4()), user=None), Privacy(subject="bob"))
    assert inf["metadata"][f.SUBJECT] == pseudonym("bob", SECRET)


def test_keyring_opens_what_was_sealed_and_reads_erased_rows_as_erased(parts: tuple) -> None:
    sealer, store, master = parts
    rid_a, rid_b = str(uuid.uuid4()), str(uuid.uuid4())
    a = sealer.inference(_inference(rid_a, "alice"), Privacy())
    b = sealer.inference(_inference(rid_b, "bob"), Privacy())
    fa = sealer.feedback(_feedback(rid_a, {"type": "END_USER", "id": "alice"}), Privacy())
    fb = sealer.feedback(_feedback(rid_b, {"type": "END_USER", "id": "bob"}), Privacy())
    table = pa.concat_tables([_pairs_table(a, fa), _pairs_table(b, fb)])
    ring = Keyring(store.load(), [master], store)
    opened = open_table(table, "pairs", ring)
    assert opened.column("prompt").to_pylist() == ["MARK-prompt: how do I reset my password?"] * 2
    assert opened.column("chosen_messages").to_pylist()[0] == [{"role": "assistant", "content": "MARK-answer-b two"}]
    assert dict(opened.column("feedback_metadata").to_pylist()[1])["note"] == "MARK-fbmeta"
    assert opened.column("subject").to_pylist() == [pseudonym("alice", SECRET), pseudonym("bob", SECRET)]
    assert opened.column("erased").to_pylist() == [False, False]

    alice = store.load().of_subject(pseudonym("alice", SECRET))
    assert len(alice) == 1
    store.erase(alice, "erasure-1")
    ring = Keyring(store.load(), [master], store)
    opened = open_table(table, "pairs", ring)
    assert opened.column("erased").to_pylist() == [True, False]
    assert opened.column("prompt").to_pylist() == [None, "MARK-prompt: how do I reset my password?"]
    assert opened.column("rationale").to_pylist() == [None, "MARK-why"]
    assert opened.column("subject").to_pylist()[0] == pseudonym("alice", SECRET)  # still counted as whose


def test_a_key_the_store_lost_is_an_error_never_an_erasure(parts: tuple, tmp_path: Path) -> None:
    sealer, _, master = parts
    record = sealer.inference(_inference(str(uuid.uuid4())), Privacy())
    empty = DirKeyStore(tmp_path / "restarted-empty")
    ring = Keyring(empty.load(), [master], empty)
    with pytest.raises(KeyError_, match="restore it from its backup"):
        ring.open(record["prompt"])


def test_a_missing_master_key_names_the_fix(parts: tuple, tmp_path: Path) -> None:
    sealer, store, _ = parts
    record = sealer.inference(_inference(str(uuid.uuid4())), Privacy())
    other = generate_master(tmp_path / "other.key")
    ring = Keyring(store.load(), [other], store)
    with pytest.raises(KeyError_, match="PREFLOG_PRIVACY__MASTER_KEY_FILE"):
        ring.open(record["prompt"])


def test_rotation_rewraps_data_keys_and_the_data_still_opens(parts: tuple, tmp_path: Path) -> None:
    sealer, store, old = parts
    record = sealer.inference(_inference(str(uuid.uuid4())), Privacy())
    new = generate_master(tmp_path / "new.key")
    store.put([k.rewrapped(old, new) for k in store.load().keys.values()])
    ring = Keyring(store.load(), [new], store)
    assert ring.open(record["prompt"]) == "MARK-prompt: how do I reset my password?"
    assert {k.master for k in store.load().keys.values()} == {new.id}
    with pytest.raises(KeyError_):
        pick([old], new.id)


def test_a_tampered_value_does_not_open(parts: tuple) -> None:
    sealer, store, master = parts
    record = sealer.inference(_inference(str(uuid.uuid4())), Privacy())
    key_id = key_of(record["prompt"])
    assert key_id is not None
    raw = bytearray(base64.b64decode(record["prompt"][21:]))
    raw[-1] ^= 1
    bad = record["prompt"][:21] + base64.b64encode(bytes(raw)).decode()
    aead = Keyring(store.load(), [master], store).aead(key_id)
    assert aead is not None
    with pytest.raises(SealError):
        open_text(aead, key_id, bad)


def test_an_erased_subject_gets_a_new_key_once_the_watch_tells_the_sealer(parts: tuple) -> None:
    sealer, store, _ = parts
    watch = DirWatch(store.path, every_s=0)
    first = sealer.inference(_inference(str(uuid.uuid4()), "carol"), Privacy())
    store.erase(store.load().of_subject(pseudonym("carol", SECRET)), "erasure-2")
    assert sealer.forget(watch.poll()) == 1
    second = sealer.inference(_inference(str(uuid.uuid4()), "carol"), Privacy())
    assert first["metadata"][f.KEY] != second["metadata"][f.KEY]


def test_keys_are_scoped_by_consent_and_retention_month(parts: tuple) -> None:
    sealer, store, _ = parts
    a = sealer.inference(_inference(str(uuid.uuid4()), "dan"), Privacy(consent=("training",)))
    b = sealer.inference(_inference(str(uuid.uuid4()), "dan"), Privacy(consent=("training",)))
    c = sealer.inference(_inference(str(uuid.uuid4()), "dan"), Privacy(consent=()))
    d = sealer.inference(_inference(str(uuid.uuid4()), "dan"), Privacy(retention_days=10))
    keys = [r["metadata"][f.KEY] for r in (a, b, c, d)]
    assert keys[0] == keys[1] and len(set(keys)) == 3
    snap = store.load()
    assert snap.keys[keys[0]].consent == "training" and snap.keys[keys[2]].consent == ""
    expires = snap.keys[keys[3]].expires_ms
    assert expires == int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)  # Dec 1 + 10 days -> Jan


def test_privacy_fields_are_checked_and_reserved_keys_refused() -> None:
    with pytest.raises(ValidationError, match="consent: unknown purpose 'marketing'"):
        privacy_fields("InferenceEvent", {"consent": "training,marketing"})
    with pytest.raises(ValidationError, match="retention_days"):
        privacy_fields("InferenceEvent", {"retention_days": 0})
    with pytest.raises(ValidationError, match=r"preflog\.subject"):
        privacy_fields("InferenceEvent", {"metadata": {"preflog.subject": "x"}})
    data = {"subject": "eve", "consent": ["analytics"], "prompt": "p"}
    p = privacy_fields("InferenceEvent", data)
    assert data == {"prompt": "p"} and p.subject == "eve" and p.consent == ("analytics",)


def test_duckdb_views_open_sealed_fields_and_mark_erased_rows(parts: tuple) -> None:
    sealer, store, master = parts
    rids = [str(uuid.uuid4()) for _ in range(3)]
    users = ["u1", "u2", "u3"]
    rows = []
    for rid, user in zip(rids, users, strict=True):
        inf = sealer.inference(_inference(rid, user), Privacy())
        rows.append(_pairs_table(inf, sealer.feedback(_feedback(rid, {"type": "END_USER", "id": user}), Privacy())))
    table = pa.concat_tables(rows)
    store.erase(store.load().of_subject(pseudonym("u2", SECRET)), "erasure-3")
    ring = Keyring(store.load(), [master], store)
    con = duckdb.connect()
    try:
        con.register("raw", table)
        opened_view(con, "pairs", "SELECT * FROM raw", "pairs", table.schema, ring)
        got = con.sql("SELECT subject, erased, prompt, rationale, feedback_metadata['note'], "
                      "prompt_messages[1].content FROM pairs ORDER BY subject").fetchall()  # fmt: skip
    finally:
        con.close()
    expected = sorted(
        (pseudonym(u, SECRET), u == "u2", None if u == "u2" else "MARK-prompt: how do I reset my password?",
         None if u == "u2" else "MARK-why", None if u == "u2" else "MARK-fbmeta", None if u == "u2" else "MARK-system")
        for u in users
    )  # fmt: skip
    assert got == expected


def test_a_data_key_record_holds_no_secret_in_the_clear(tmp_path: Path) -> None:
    master = generate_master(tmp_path / "m.key")
    record, key = DataKey.make("psn_" + "0" * 32, master, 1)
    assert key not in record.to_bytes() and base64.b64encode(key) not in record.to_bytes()
    assert DataKey.from_bytes(record.to_bytes()).unwrap(master) == key


def test_a_key_erased_between_its_store_and_its_caching_is_never_used(parts: tuple) -> None:
    sealer, store, _ = parts
    real_put = store.put

    # the erasure and the watch land right after the key is stored
    def put_then_erased(keys: list, timeout: float = 30.0) -> int:
        n = real_put(keys, timeout=timeout)
        sealer.forget([k.key_id for k in keys][:1] if not hasattr(put_then_erased, "done") else [])
        put_then_erased.done = True  # type: ignore[attr-defined]
        return n

    store.put = put_then_erased
    rid = str(uuid.uuid4())
    first = sealer.inference(_inference(rid, "dora"), Privacy())
    keys = store.load().of_subject(pseudonym("dora", SECRET))
    assert len(keys) == 2  # the forgotten key, and the one the event used
    used = first["metadata"]["preflog.key"]
    assert used in {k.key_id for k in keys} and used not in sealer._forgotten


def test_tool_call_arguments_and_image_uris_are_sealed_and_open_on_both_read_paths(parts: tuple) -> None:
    sealer, store, master = parts
    rid = str(uuid.uuid4())
    image = {"uri": "s3://photos/MARK-image.png", "sha256": "ab" * 32, "media_type": "image/png"}
    call = {"id": "c1", "name": "lookup", "arguments": {"q": "MARK-args"}}
    trajectory = [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "MARK-result", "tool_call_id": "c1", "name": "lookup"},
    ]
    event = _inference(rid) | {
        "prompt_messages": [{"role": "user", "content": "MARK-prompt", "images": [image]}],
        "candidates": [{"index": 0, "text": "MARK-answer-a", "messages": trajectory}, {"index": 1, "text": "b"}],
    }
    inf = sealer.inference(inference_record(event), Privacy())
    assert not any(m in " ".join(_texts(inf)) for m in ("MARK-image", "MARK-args", "MARK-result"))
    assert inf["prompt_messages"][0]["images"][0]["sha256"] == "ab" * 32  # the hash stays: builds check it
    fb = sealer.feedback(_feedback(rid, {"type": "END_USER", "id": "alice"}), Privacy())
    table = _pairs_table(inf, fb)
    ring = Keyring(store.load(), [master], store)
    opened = open_table(table, "pairs", ring)
    assert opened.column("prompt_messages").to_pylist()[0][0]["images"][0]["uri"] == "s3://photos/MARK-image.png"
    rejected = opened.column("rejected_messages").to_pylist()[0]
    assert rejected[0]["tool_calls"][0]["arguments"] == '{"q":"MARK-args"}' and rejected[1]["content"] == "MARK-result"
    con = duckdb.connect()
    try:
        con.register("raw", table)
        opened_view(con, "pairs", "SELECT * FROM raw", "pairs", table.schema, ring)
        query = (
            "SELECT prompt_messages[1].images[1].uri, rejected_messages[1].tool_calls[1].arguments, "
            "rejected_messages[2].tool_call_id, rejected_messages[2].content FROM pairs"
        )
        got = con.sql(query).fetchall()
    finally:
        con.close()
    assert got == [("s3://photos/MARK-image.png", '{"q":"MARK-args"}', "c1", "MARK-result")]
