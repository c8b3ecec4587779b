"""Issue 20's acceptance test: after `preflog erase --subject eve`, no byte preflog wrote or holds shows eve's text.

Four people use a chat service logging through the SDK with privacy on (data keys in a keys topic on the
broker). Eve's prompts, answers, chat messages, rationales and metadata values carry marker strings
(``MARKER-EVE-<tag>``), as do the others' (``MARKER-ALICE-...``), and her traffic reaches every output:
pairs (PAIRWISE, RANKING), unpaired signals (RATING, IMPLICIT), unmatched records (an inference without
feedback, a feedback without inference, a SCORES tie deciding no pair) and a dead letter (a feedback
naming a candidate that does not exist, sent by another service that never saw the inference).

The processor (RocksDB store) and the sink run as real processes; then a replay (to its own log), two
dataset builds, two exports and a report. Eve is erased. Then everything is scanned, decoded first (see
:mod:`.erasure_scan`): the test's whole temporary folder (data directory, audit log, replay, builds,
exports, report, the processor's RocksDB, every log file, the temporary files of the commands), the
broker's folder, and every record of every topic of the test (inputs, outputs, the keys topic, the
processor's changelog and internal topics). No marker of eve's may be found in plaintext anywhere; the
others' texts are readable exactly as before.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

import preflog
from preflog.cli import app
from preflog.deploy.broker import EmbeddedBroker
from preflog.privacy.keyring import Keyring
from preflog.privacy.keys import load_secret
from preflog.privacy.pseudonym import pseudonym
from preflog.producers import PreflogProducer
from preflog.settings import TopicSettings, load_settings
from tests import service_env

from ..kafka_helpers import read_topic
from .conftest import Worker
from .erasure_scan import Scan, scan_kafka, scan_paths

pytestmark = pytest.mark.integration

OTHERS = ("alice", "bob", "carol")
#: the processor's join settings: a short window, so unmatched records come out within seconds (idle ticks)
JOIN = {"window_s": 6, "grace_s": 1, "idle_timeout_s": 2, "tick_interval_s": 0.5}
#: what the traffic makes: eve's (4 pairs, 2 signals, 4 unmatched, a dead letter), the others' (4 pairs and a signal
#: each, an unmatched inference of alice's), then a pair each of eve's and alice's still open in the join state
FIRST = {"pairs": 4 + 3 * 4, "unpaired": 2 + 3 * 1, "unmatched": 4 + 1, "dead_letter": 1}
EXPECTED = {**FIRST, "pairs": FIRST["pairs"] + 2}
PAIRS = {"eve": 5, "alice": 5, "bob": 4, "carol": 4}
SIGNALS = {"eve": 2, "alice": 1, "bob": 1, "carol": 1}


class Marks:
    """Marker texts of one person: ``MARKER-<NAME>-<what><n>``, each one distinct."""

    def __init__(self, name: str, tag: str = "") -> None:
        self.prefix = f"MARKER-{name.upper()}-{tag}"
        self.n = 0

    def __call__(self, what: str) -> str:
        self.n += 1
        return f"{self.prefix}{what}{self.n}"


def _inference(m: Marks, user: str, at: datetime, candidates: int = 3) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "event_time": at,
        "prompt": f"{m('prompt')} how do I reset my password?",
        "prompt_messages": [{"role": "system", "content": m("system")}, {"role": "user", "content": m("user")}],
        "candidates": [
            {"index": i, "text": f"{m('answer')} try this", "messages": [{"role": "assistant", "content": m("msg")}]}
            for i in range(candidates)
        ],
        "model": {"name": "acme-chat", "version": "2026.11"},
        "context": {"user_id": user, "session_id": m("session"), "tenant": "acme", "service": "chat"},
        "metadata": {"ticket": m("meta"), "region": "eu"},
    }


def _feedback(m: Marks, rid: str, at: datetime, kind: str, payload: Any, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "feedback_id": str(uuid.uuid4()),
        "request_id": rid,
        "event_time": at + timedelta(seconds=1),
        "kind": kind,
        kind.lower(): payload,
        "source": source,
        "rationale": f"{m('why')} because",
        "metadata": {"note": m("fbmeta")},
    }


ANNOTATOR = {"type": "HUMAN_ANNOTATOR", "id": "annotator-7"}
RANKING = [{"index": 0, "rank": 1}, {"index": 1, "rank": 2}, {"index": 2, "rank": 3}]


def _eve(serving: PreflogProducer, labeler: PreflogProducer, at: datetime) -> None:
    """Eve's traffic: 4 pairs, 2 unpaired signals, 4 unmatched records and a dead letter."""
    m, me = Marks("eve"), {"type": "END_USER", "id": "eve"}
    sends: list[Any] = []
    for kind, payload in (("PAIRWISE", {"chosen": 0, "rejected": 1}), ("RANKING", RANKING)):  # 1 + 3 pairs
        inf = _inference(m, "eve", at)
        sends += [
            serving.log_inference(inf),
            serving.log_feedback(_feedback(m, inf["request_id"], at, kind, payload, me)),
        ]
    inf = _inference(m, "eve", at)  # a thumbs-up and a copy: two unpaired signals
    sends.append(serving.log_inference(inf))
    rating = {"index": 0, "label": True, "value": 1.0, "scale": "thumbs"}
    sends.append(serving.log_feedback(_feedback(m, inf["request_id"], at, "RATING", rating, me)))
    copy = {"index": 1, "signal": "copy", "label": True}
    sends.append(serving.log_feedback(_feedback(m, inf["request_id"], at, "IMPLICIT", copy, me)))
    sends.append(serving.log_inference(_inference(m, "eve", at)))  # never judged: unmatched NO_FEEDBACK
    orphan = str(uuid.uuid4())  # a judgement whose inference never comes: unmatched NO_INFERENCE
    sends.append(serving.log_feedback(_feedback(m, orphan, at, "PAIRWISE", {"chosen": 1, "rejected": 0}, me)))
    inf = _inference(m, "eve", at)  # a tie: unmatched NO_PAIRS
    sends.append(serving.log_inference(inf))
    tie = [{"index": 0, "score": 0.5}, {"index": 1, "score": 0.5}, {"index": 2, "score": 0.5}]
    sends.append(serving.log_feedback(_feedback(m, inf["request_id"], at, "SCORES", tie, ANNOTATOR)))
    inf = _inference(m, "eve", at, candidates=2)  # judged by another service naming candidate 5: a dead letter
    sends.append(serving.log_inference(inf))  # (and the inference, judged by nothing valid: NO_FEEDBACK)
    bad = {"chosen": 5, "rejected": 0}
    sends.append(labeler.log_feedback(_feedback(m, inf["request_id"], at, "PAIRWISE", bad, me)))
    _delivered(sends, serving, labeler)


def _other(serving: PreflogProducer, name: str, at: datetime) -> None:
    """Another person's traffic: 4 pairs and a signal (alice also an inference nobody judges)."""
    m, me = Marks(name), {"type": "END_USER", "id": name}
    sends: list[Any] = []
    for kind, payload in (("PAIRWISE", {"chosen": 1, "rejected": 0}), ("RANKING", RANKING)):
        inf = _inference(m, name, at)
        sends += [
            serving.log_inference(inf),
            serving.log_feedback(_feedback(m, inf["request_id"], at, kind, payload, ANNOTATOR)),
        ]
    inf = _inference(m, name, at)
    sends.append(serving.log_inference(inf))
    rating = {"index": 2, "label": False, "value": 0.0, "scale": "thumbs"}
    sends.append(serving.log_feedback(_feedback(m, inf["request_id"], at, "RATING", rating, me)))
    if name == "alice":
        sends.append(serving.log_inference(_inference(m, name, at)))
    _delivered(sends, serving)


def _open(serving: PreflogProducer, at: datetime) -> None:
    """Eve's and alice's latest requests, judged, their window still open when eve is erased: kept in the join state.

    Their event times are half an hour ahead of the clock (the processor admits up to max_event_time_skew_s, an
    hour), so the idle ticks of this test's short window cannot expire them: the processor's RocksDB and its
    changelog hold their records at the end. Eve also has an inference nobody judged yet.
    """
    sends: list[Any] = []
    for name in ("eve", "alice"):
        m, me = Marks(name, "open"), {"type": "END_USER", "id": name}
        inf = _inference(m, name, at)
        sends.append(serving.log_inference(inf))
        pairwise = {"chosen": 0, "rejected": 1}
        sends.append(serving.log_feedback(_feedback(m, inf["request_id"], at, "PAIRWISE", pairwise, me)))
    sends.append(serving.log_inference(_inference(Marks("eve", "waiting"), "eve", at)))
    _delivered(sends, serving)


def _delivered(sends: list[Any], *producers: PreflogProducer) -> None:
    for p in producers:
        assert p.flush(30) == 0
    for future in sends:
        future.result(30)


def _outputs(kafka_config: dict[str, Any], topics: TopicSettings, expected: dict[str, int]) -> None:
    for table, n in expected.items():
        got = read_topic(kafka_config, getattr(topics, table), topics.partitions, expect=n, timeout=90, settle=0)
        assert len(got) >= n, f"{table}: {len(got)} of {n} records (processor.log says why)"


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"preflog {args[0]}: exit {result.exit_code}: {result.exception!r}"
    return result.output


def _wait_rows(url: str, table: str, n: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _rows(url, table) < n:
        assert time.monotonic() < deadline, f"timed out waiting for {n} {table} rows in the audit log"
        time.sleep(0.5)


def _rows(url: str, table: str) -> int:
    try:
        return int(preflog.read_table(url, table).num_rows)
    except FileNotFoundError:
        return 0


def _read(url: str, table: str, keyring: Keyring, eve: str) -> dict[str, str | None]:
    """Row id -> the marker its opened prompt starts with (never more of its text), or None when it reads as erased.

    A row that opens is checked to be its subject's: eve's pseudonym on eve's texts only.
    """
    key = "pair_id" if table == "pairs" else "signal_id"
    rows = preflog.read_pairs(url, table=table, keys=keyring).select([key, "prompt", "subject", "erased"]).to_pylist()
    out: dict[str, str | None] = {}
    for r in rows:
        if r["erased"]:
            assert r["prompt"] is None, "an erased row still shows its prompt"
            out[r[key]] = None
            continue
        marker = str(r["prompt"]).split(" ", 1)[0]
        assert marker.startswith("MARKER-"), "an opened prompt is not the text that was logged"
        assert (r["subject"] == eve) == marker.startswith("MARKER-EVE-"), f"{marker}'s row has another's subject"
        out[r[key]] = marker
    return out


def _people(rows: dict[str, str | None]) -> Counter[str]:
    """How many rows each person's texts are in (``erased``: rows that read as erased)."""
    return Counter("erased" if m is None else m.split("-")[1].lower() for m in rows.values())


def _where(scan: Scan, prefix: str, tmp: Path) -> dict[str, set[str]]:
    """Places holding markers of ``prefix``, relative to the test folder, with the markers found there."""
    return {place.replace(str(tmp), "<tmp>"): markers for place, markers in scan.places(prefix).items()}


def _full_scan(kafka_config: dict[str, Any], suffix: str, roots: list[Path]) -> tuple[Scan, list[str]]:
    names = sorted(t for t in AdminClient(kafka_config).list_topics(timeout=20).topics if suffix in t)
    scan = scan_kafka(kafka_config, names)
    scan_paths(roots, scan)
    return scan, names


def test_erasing_a_subject_leaves_no_plaintext_anywhere_and_every_other_pair_readable(
    broker: EmbeddedBroker,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suffix = topics.inference.rsplit(".", 1)[-1]
    keys_topic, app_id = f"preflog.keys.{suffix}", f"preflog-erasure-{suffix}"
    data, temp, work = tmp_path / "data", tmp_path / "tmp", tmp_path / "cwd"
    temp.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)  # whatever a command writes beside it (DuckDB's .tmp) is scanned too
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # and its temporary files (the report's database)
    for k in [k for k in os.environ if k.startswith("PREFLOG_")]:
        monkeypatch.delenv(k)
    env = {
        "PREFLOG_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PREFLOG_TOPICS__PARTITIONS": str(topics.partitions),
        "PREFLOG_DATA_DIR": str(data),
        "PREFLOG_PRIVACY__ENABLED": "true",
        "PREFLOG_PRIVACY__MASTER_KEY_FILE": str(tmp_path / "keys" / "master.key"),
        "PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE": str(tmp_path / "keys" / "pseudonym.secret"),
        "PREFLOG_PRIVACY__KEYS_TOPIC": keys_topic,
        "PREFLOG_PROCESSOR__WINDOW_S": str(JOIN["window_s"]),  # the replay joins as the live worker did
        "PREFLOG_PROCESSOR__GRACE_S": str(JOIN["grace_s"]),
        **{f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()},
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TMPDIR", str(temp))

    # 1. keys, the keys topic, and the traffic of four people through the SDK
    _invoke(
        "privacy",
        "new-key",
        env["PREFLOG_PRIVACY__MASTER_KEY_FILE"],
        "--secret",
        env["PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE"],
    )
    assert keys_topic in _invoke("topics", "create")
    settings = load_settings()
    eve = pseudonym("eve", load_secret(settings))
    at = datetime.now(timezone.utc).replace(microsecond=0)
    audit = f"file://{(data / 'audit').resolve()}"
    processor_env = service_env.processor_env(
        broker.bootstrap_servers, topics.all(), tmp_path / "state", app_id=app_id, store="rocksdb://", **JOIN
    )
    sink_env = service_env.sink_env(broker.bootstrap_servers, topics.all(), url=audit, idle_flush_s=1)
    workers: list[Worker] = []
    with (
        PreflogProducer.from_settings(settings) as serving,
        PreflogProducer.from_settings(settings) as labeler,
    ):
        _eve(serving, labeler, at)
        for name in OTHERS:
            _other(serving, name, at)

        # 2. the processor (RocksDB) and the sink as processes; the outputs and the audit log complete
        try:
            workers.append(Worker({**processor_env, "TMPDIR": str(temp)}, tmp_path / "processor.log").start())
            workers.append(Worker({**sink_env, "TMPDIR": str(temp)}, tmp_path / "sink.log", ("sink",)).start())
            _outputs(kafka_config, topics, FIRST)
            _open(serving, at + timedelta(minutes=30))  # after the first outputs: its clock expires nothing early
            _outputs(kafka_config, topics, EXPECTED)
            for table, n in EXPECTED.items():
                _wait_rows(audit, table, n)
            time.sleep(2)  # a late duplicate would show now
        finally:
            for w in workers:
                w.stop()
        assert serving.sealer is not None and serving.sealer.keys_made == 4  # a data key per person
        assert labeler.sealer is not None and labeler.sealer.keys_made == 1
    assert {t: _rows(audit, t) for t in EXPECTED} == EXPECTED

    # 3. readers: a replay to its own log, two builds, two exports, a report
    replay = f"file://{tmp_path / 'replay'}"
    assert "pairs written" in _invoke("replay", "--name", "r1", "--output", replay)
    assert _rows(replay, "pairs") == EXPECTED["pairs"]
    _invoke("dataset", "build", "a")
    _invoke(
        "dataset", "build", "b", "--format", "trl", "--format", "kto", "--compress", "gzip", "--test-fraction", "0.5"
    )
    exports = tmp_path / "exports"
    _invoke("export", str(exports / "train.jsonl"), "--format", "trl")
    _invoke("export", str(exports / "kto.jsonl"), "--format", "kto")
    _invoke("report", str(tmp_path / "report"), "--bootstrap", "20")
    before = {t: _read(audit, t, Keyring.load(settings), eve) for t in ("pairs", "unpaired")}
    assert _people(before["pairs"]) == PAIRS
    assert _people(before["unpaired"]) == SIGNALS

    roots = [tmp_path, broker.data_dir]
    scan, names = _full_scan(kafka_config, suffix, roots)
    clear = ("<tmp>/data/datasets/a/", "<tmp>/data/datasets/b/", "<tmp>/exports/")  # copies in the clear, by design
    eve_places = _where(scan, "MARKER-EVE-", tmp_path)
    assert not scan.undecodable, scan.undecodable
    assert not [m for m in scan.hits if "session" in m], "a raw session id was stored (ids become pseudonyms)"
    sealed_leaks = {
        p: sorted(m) for p, m in _where(scan, "MARKER-", tmp_path).items() if not p.split(":", 1)[-1].startswith(clear)
    }
    assert not sealed_leaks, f"plaintext outside the builds and exports, before any erasure: {sealed_leaks}"
    for copy in clear:  # the scan sees plaintext where it is (gzip included): it would see a leak
        assert any(p.split(":", 1)[-1].startswith(copy) for p in eve_places), f"no marker of eve's found in {copy}"
    assert any(".jsonl.gz" in p for p in eve_places)

    # 4. erase eve
    said = _invoke("erase", "--subject", "eve")
    for copy in ("withdrew dataset build a", "withdrew dataset build b", "withdrew export"):
        assert copy in said, said
    receipt = json.loads(next((data / "privacy" / "erasures").glob("*.json")).read_text())
    assert receipt["rows"] == {"pairs": PAIRS["eve"], "unpaired": SIGNALS["eve"]} and len(receipt["keys_erased"]) == 2
    _invoke("dataset", "build", "c")  # a rebuild after the erasure: the others, without eve
    manifest = json.loads((data / "datasets" / "c" / "manifest.json").read_text())
    assert manifest["privacy"]["erased"] >= PAIRS["eve"]

    # 5. the others read as before, eve's rows as erased (counted)
    for log in (audit, replay):
        after = {t: _read(log, t, Keyring.load(settings), eve) for t in ("pairs", "unpaired")}
        for table, rows in before.items():
            assert after[table].keys() == rows.keys(), f"{log}: {table} rows came or went"
            erased = {i for i, m in rows.items() if m is not None and m.startswith("MARKER-EVE-")}
            assert {i for i, m in after[table].items() if m is None} == erased, f"{log}: {table}: not eve's rows erased"
            others = {i: m for i, m in rows.items() if i not in erased}
            assert {i: after[table][i] for i in others} == others, f"{log}: {table}: another's row reads differently"
        assert _people(after["pairs"]) == Counter({**PAIRS, "eve": 0, "erased": PAIRS["eve"]})
        assert _people(after["unpaired"]) == Counter({**SIGNALS, "eve": 0, "erased": SIGNALS["eve"]})

    # 6. every byte: no marker of eve's anywhere; the others' in the clear only in the rebuild
    scan, names = _full_scan(kafka_config, suffix, roots)
    assert not scan.undecodable, scan.undecodable
    leaks = {p: sorted(m) for p, m in _where(scan, "MARKER-EVE-", tmp_path).items()}
    assert not leaks, f"eve's text in plaintext after her erasure: {leaks}"
    in_clear = set(_where(scan, "MARKER-", tmp_path))
    assert in_clear and all(p.split(":", 1)[-1].startswith("<tmp>/data/datasets/c/") for p in in_clear), in_clear

    # the scan read what it claims to have read
    roles = {getattr(topics, r) for r in ("inference", "feedback", "pairs", "unpaired", "unmatched", "dead_letter")}
    assert roles | {keys_topic} <= set(names)
    changelogs = [n for n in names if n.endswith("-changelog")]
    assert changelogs, names
    for topic in (*roles, *changelogs):
        assert scan.read[f"kafka:{topic}"] > 0 and scan.sealed[f"kafka:{topic}"] > 0, topic
    assert scan.read["rocksdb"] > 0 and scan.sealed["rocksdb"] > 0
    assert scan.read["files"] > 0


def test_the_scan_finds_a_marker_in_every_encoding_it_reads(tmp_path: Path) -> None:
    """A scan that finds nothing proves something only if it finds what is there: each decoder, on a planted marker."""
    import base64
    import gzip

    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rocksdict import DBCompressionType, Options, Rdict

    (tmp_path / "plain.log").write_text("x MARKER-T-plain y")
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "MARKER-T-gzip"}\n' * 50))
    html = base64.b64encode(gzip.compress(b"<svg><text>MARKER-T-datauri</text></svg>")).decode()
    (tmp_path / "report.html").write_text(f'<img src="data:image/svg+xml;base64,{html}">')
    table = pa.table({
        "text": ["MARKER-T-column"] * 100,
        "messages": [[{"role": "user", "content": "MARKER-T-nested"}]] * 100,
        "meta": pa.array([[("k", "MARKER-T-map")]] * 100, pa.map_(pa.string(), pa.string())),
        "value": [gzip.compress(b"MARKER-T-binary")] * 100,
    })  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet", compression="zstd")
    con = duckdb.connect(str(tmp_path / "spill.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 'MARKER-T-duckdb' || (i % 3) AS s FROM range(100000) r(i)")
    con.execute("CHECKPOINT")
    con.close()
    options = Options(raw_mode=True)
    options.set_compression_type(DBCompressionType.zstd())
    db = Rdict(str(tmp_path / "state.db"), options)
    for i in range(2000):
        db[f"k{i}".encode()] = b"MARKER-T-rocksdb " * 20
    db.flush()
    db.close()
    for wal in (tmp_path / "state.db").glob("*.log"):
        wal.unlink()  # only the compressed SST is left: the DB API must read it

    scan = scan_paths([tmp_path])
    assert not scan.undecodable, scan.undecodable
    found = {m: {p.replace(str(tmp_path), "") for p in where} for m, where in scan.hits.items()}
    assert "files:/plain.log" in found["MARKER-T-plain"]
    assert "files:/rows.jsonl.gz|decompressed" in found["MARKER-T-gzip"]
    assert "files:/report.html|base64|decompressed" in found["MARKER-T-datauri"]
    for marker, column in (("column", "text"), ("nested", "messages"), ("map", "meta")):
        assert f"files:/t.parquet[{column}]" in found[f"MARKER-T-{marker}"], marker
    assert "files:/t.parquet[value]|decompressed" in found["MARKER-T-binary"]
    assert "files:/spill.duckdb[main.t]" in found["MARKER-T-duckdb0"]  # its compressed pages hide it from a grep
    assert "rocksdb:/state.db[default] value" in found["MARKER-T-rocksdb"]
