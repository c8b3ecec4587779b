"""Fault suite: generated traffic with known outcomes, faults injected, the audit log checked independently.

    python benchmarks/faults.py            # the short run (what tests/integration/test_faults.py runs)
    python benchmarks/faults.py --full     # >=10 kill -9 of each service, broker restart, outages, every bad input
    python benchmarks/faults.py --full --json

What it starts (loopback only, every child in its own process group, all
killed on exit): moto's S3 server; Tansu with its log in S3 (``--storage-engine
s3://``) behind a TCP proxy (clients only know the proxy port, which the
broker advertises); ``preflog process`` and ``preflog sink`` as subprocesses,
the sink writing ``s3://`` through a second proxy.

What it expects comes from the generator's own decisions
(``producers.generator.expected_outcomes``) and from the list of hostile
inputs (``fault_inputs.py``), never from the Joiner. What it finds is read
straight from the Parquet files in S3 (pyarrow), and from the pairs topic, to
say whether a missing pair was lost by the processor or by the sink.

Faults: kill -9 of the processor at random moments (some during its start-up
recovery); kill -9 of the sink at random moments and right after a new file
appears; kill -9 of the broker and a restart on the same port (the log is in
S3); the broker's network cut (connections refused, or blackholed); the object
store cut (the sink's S3 proxy refuses or blackholes); hostile records sent
raw beside the traffic. Exit code 1 unless nothing is lost, nothing
duplicated and every bad input is accounted for.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # fault_* helpers beside this file; tests.tcp_proxy from the repo root
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pyarrow.parquet as pq  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from fault_inputs import BadInput, Expect, bad_inputs  # noqa: E402
from fault_stack import Moto, Service, Tansu, code_version, processor_env, sink_env, snapshot_code  # noqa: E402

from preflog.deploy.topics import ensure_topics  # noqa: E402
from preflog.producers import PreflogProducer  # noqa: E402
from preflog.producers.generator import GeneratedEvent, TrafficProfile, expected_outcomes, generate  # noqa: E402
from preflog.schemas.codec import SingleObjectCodec  # noqa: E402
from preflog.settings import TopicSettings  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

CODEC = SingleObjectCodec()
READY = "[^Worker]: Ready"  # Faust's log line when the worker has recovered its tables
TABLES = ("pairs", "unpaired", "unmatched", "dead_letter")
COLUMNS = {
    "pairs": ["pair_id", "feedback_id", "chosen_index", "rejected_index"],
    "unpaired": ["signal_id", "feedback_id", "completion_index"],
    "unmatched": ["reason", "request_id", "feedback_id", "source_offset"],
    "dead_letter": ["reason", "error_class", "source_offset"],
}
SHORT_BAD = [
    "garbage bytes (feedback)",
    "truncated Avro (inference)",
    "Confluent framing where single-object is expected",
    "key does not match request_id (feedback)",
    "enum index -1 (source type)",
    "candidate index that does not exist",
    "NaN score",
    "event time in year 9999 (feedback)",
    "duplicate inference id with other content",
]


@dataclass
class Plan:
    """What one run does."""

    name: str
    requests: int
    rate: float  # requests per second (event time and wall time alike)
    partitions: int = 3
    processor_kills: int = 3
    sink_kills: int = 3
    broker_restarts: int = 0
    broker_cuts: list[tuple[str, float]] = field(default_factory=lambda: [("refuse", 6.0)])
    s3_outages: list[tuple[str, float]] = field(default_factory=list)
    bad_kinds: list[str] | None = None  # None: every kind
    broker_storage: str = "s3"  # s3 (survives a broker restart) or memory
    window_s: float = 60.0
    grace_s: float = 10.0
    idle_timeout_s: float = 30.0
    store: str = "rocksdb://"
    tick_interval_s: float = 0.5
    sink_max_rows: int = 20
    converge_timeout_s: float = 90.0
    stall_s: float = 25.0
    seed: int = 11
    snapshot: bool = True  # run the services from a copy of the code taken at the start


SHORT = Plan(
    "short", requests=150, rate=4.5, bad_kinds=SHORT_BAD, broker_storage="memory", converge_timeout_s=120, stall_s=40
)
FULL = Plan(  # sized for Tansu's S3 engine on moto, which fetches a few hundred single-record batches per second
    "full",
    requests=450,
    rate=1.5,
    partitions=3,
    tick_interval_s=2.0,
    processor_kills=12,
    sink_kills=12,
    broker_restarts=1,
    broker_cuts=[("refuse", 15.0), ("blackhole", 15.0)],
    s3_outages=[("blackhole", 30.0), ("refuse", 30.0)],
    converge_timeout_s=420,
    stall_s=150,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- sending -----------------------------------------------------------------------------------


@dataclass
class Sent:
    """One generated event or hostile record and where the broker put it."""

    label: str
    role: str
    key: bytes | None
    value: bytes | None
    offsets: list[tuple[str, int, int]] = field(default_factory=list)
    failures: int = 0


class Sender:
    """Sends records through the SDK's producer, records every delivery, resends what failed."""

    def __init__(self, config: dict[str, Any], topics: TopicSettings) -> None:
        self.config, self.topics = config, topics
        self.producer = PreflogProducer({**config, "log_level": 0}, CODEC, topics, max_block_ms=2000)
        raw = {**config, "acks": "all", "message.max.bytes": 4_000_000, "linger.ms": 5, "log_level": 0}
        self.raw = Producer(raw)  # hostile records: not idempotent, no validation, big values allowed
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def send(self, item: Sent, raw: bool = False) -> None:
        with self._lock:
            self.sent.append(item)
        self._produce(item, raw)

    def _produce(self, item: Sent, raw: bool) -> None:
        topic = getattr(self.topics, item.role)
        if raw:

            def done(err: Any, msg: Any) -> None:
                if err is None:
                    item.offsets.append((msg.topic(), msg.partition(), msg.offset()))
                else:
                    item.failures += 1

            while True:
                try:
                    self.raw.produce(topic, key=item.key, value=item.value, on_delivery=done)
                    self.raw.poll(0)
                    return
                except BufferError:
                    self.raw.poll(0.05)
        future: Future[Any] = self.producer.send(topic, item.key, item.value or b"")

        def delivered(f: Future[Any]) -> None:
            try:
                where = f.result()
                item.offsets.append((where.topic, where.partition, where.offset))
            except Exception:
                item.failures += 1

        future.add_done_callback(delivered)

    def flush_and_retry(self, rounds: int = 5) -> int:
        """Flush both producers; resend records with no successful delivery. Returns how many never made it."""
        for _ in range(rounds):
            self.producer.flush(60)
            self.raw.flush(60)
            missing = [s for s in self.sent if not s.offsets]
            if not missing:
                return 0
            log(f"resending {len(missing)} record(s) whose delivery failed")
            for s in missing:
                self._produce(s, raw=s.label.startswith("bad:"))
        return sum(1 for s in self.sent if not s.offsets)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.producer.close(10)
        with contextlib.suppress(Exception):
            self.raw.flush(10)


def generated_value(e: GeneratedEvent) -> tuple[str, bytes]:
    if e.event_type == "garbage":
        return "feedback", e.raw or b""
    assert e.record is not None
    record_type = "InferenceEvent" if e.event_type == "inference" else "FeedbackEvent"
    if e.invalid_reason:  # skip the SDK's validation on purpose, as producers/traffic.py does
        return e.event_type, CODEC.encode(record_type, e.record)
    from preflog.schemas.events import feedback_record, inference_record

    record = inference_record(e.record) if e.event_type == "inference" else feedback_record(e.record)
    return e.event_type, CODEC.encode(record_type, record)


# -- the run -----------------------------------------------------------------------------------


class Run:
    """One fault-suite run: the stack, the traffic, the faults, the checks."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan, self.dir = plan, workdir
        self.rng = random.Random(plan.seed)
        self.faults: Counter[str] = Counter()
        self.notes: list[str] = []
        self.crashes: list[str] = []
        suffix = uuid.uuid4().hex[:6]
        self.topics = TopicSettings(
            **{role: f"{name}.{suffix}" for role, name in TopicSettings().all().items()},
            partitions=plan.partitions,
        )
        self.moto: Moto | None = None
        self.tansu: Tansu | None = None
        self.kafka_proxy: TcpProxy | None = None
        self.s3_proxy: TcpProxy | None = None
        self.processor: Service | None = None
        self.sink: Service | None = None
        self.sender: Sender | None = None
        self.bucket = "audit"
        self.prefix = f"log-{suffix}"
        self.converged = False
        self.code_env: dict[str, str] = {}
        self.code_dir: Path | None = None
        self.version = code_version(HERE.parent)

    # -- stack ---------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        assert self.kafka_proxy is not None
        return f"127.0.0.1:{self.kafka_proxy.port}"

    @property
    def kafka_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}

    def start(self) -> None:
        p = self.plan
        if p.snapshot:
            self.code_dir = self.dir / "code"
            self.code_env = snapshot_code(HERE.parent, self.code_dir)
        self.moto = Moto(self.dir / "moto.log")
        self.moto.create_bucket(self.bucket)
        self.s3_proxy = TcpProxy(self.moto.port)
        self.kafka_proxy = TcpProxy(1)
        if p.broker_storage == "s3":
            self.moto.create_bucket("tansu")
        storage = "s3://tansu/" if p.broker_storage == "s3" else "memory://tansu/"
        self.tansu = Tansu(self.moto, storage, self.kafka_proxy.port, self.dir / "broker.log")
        self.kafka_proxy.target = self.tansu.port
        self.tansu.start()
        ensure_topics(self.kafka_config, self.topics.all().values(), p.partitions)
        topics = self.topics.all()
        penv = processor_env(
            self.bootstrap,
            topics,
            self.dir / "state",
            window_s=p.window_s,
            grace_s=p.grace_s,
            idle_timeout_s=p.idle_timeout_s,
            store=p.store,
            tick_interval_s=p.tick_interval_s,
        )
        penv.update(self.code_env)
        self.processor = Service("processor", ["process", "--loglevel", "info"], penv, self.dir, self.code_dir)
        senv = sink_env(
            self.bootstrap,
            topics,
            f"http://127.0.0.1:{self.s3_proxy.port}",
            url=f"s3://{self.bucket}/{self.prefix}",
            max_rows=p.sink_max_rows,
            idle_flush_s=0.5,
            max_age_s=2,
        )
        senv.update(self.code_env)
        self.sink = Service("sink", ["sink"], senv, self.dir, self.code_dir)
        self.processor.start()
        self.sink.start()
        self.sender = Sender(self.kafka_config, self.topics)

    def close(self) -> None:
        for part in (self.sender, self.processor, self.sink, self.kafka_proxy, self.s3_proxy, self.tansu, self.moto):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.kill() if isinstance(part, Service) else part.close()  # checks are done: no need to wait

    # -- traffic -------------------------------------------------------------------------------

    def traffic(self) -> tuple[list[GeneratedEvent], datetime]:
        p = self.plan
        profile = TrafficProfile(
            requests=p.requests, rate=p.rate, feedback_delay_s=1.0, invalid=0.03, seed=p.seed, duplicates=0.05
        )
        # event times lag the wall clock by more than window + grace, so the closing movers (event time = now)
        # expire every open inference at once, and no event time is ever ahead of its Kafka timestamp
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=p.window_s + p.grace_s + 20)
        return generate(profile, start), start

    def send_traffic(self, events: list[GeneratedEvent], stop: threading.Event) -> None:
        assert self.sender is not None
        t0 = time.monotonic()
        for i, e in enumerate(events):
            delay = t0 + e.at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            role, value = generated_value(e)
            self.sender.send(Sent(f"gen:{i}", role, e.key.encode(), value))

    def send_bad(self, records: list[BadInput]) -> None:
        assert self.sender is not None
        for n, b in enumerate(records):
            item = Sent(f"bad:{n}:{b.kind}", b.role, b.key, b.value)
            b.sent_at = {"item": item}
            self.sender.send(item, raw=True)
        self.faults["bad inputs sent (raw)"] += sum(1 for b in records if not b.companion)

    def movers(self) -> set[tuple[str, int, int]]:
        """An inference and a PAIRWISE feedback per partition at event time now: stream time passes every window."""
        assert self.sender is not None
        now = datetime.now(timezone.utc)
        pairs = set()
        covered: set[int] = set()
        rng = random.Random(self.plan.seed + 1)
        while len(covered) < self.plan.partitions:
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            partition = zlib.crc32(rid.encode()) % self.plan.partitions  # librdkafka's consistent_random
            if partition in covered:
                continue
            covered.add(partition)
            inf = {
                "request_id": rid,
                "event_time": now,
                "prompt": "move stream time",
                "candidates": ["a", "b"],
                "model": {"name": "mover"},
            }
            fid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            fb = {
                "feedback_id": fid,
                "request_id": rid,
                "event_time": now,
                "kind": "PAIRWISE",
                "pairwise": {"chosen": 0, "rejected": 1},
                "source": {"type": "HUMAN_ANNOTATOR", "id": "mover"},
            }
            from preflog.schemas.events import feedback_record, inference_record

            self.sender.send(
                Sent(
                    "mover:inference", "inference", rid.encode(), CODEC.encode("InferenceEvent", inference_record(inf))
                )
            )
            self.sender.send(
                Sent("mover:feedback", "feedback", rid.encode(), CODEC.encode("FeedbackEvent", feedback_record(fb)))
            )
            pairs.add((fid, 0, 1))
        return pairs

    # -- faults --------------------------------------------------------------------------------

    def watchdog(self) -> None:
        """A service that exited on its own is a finding; it is restarted."""
        for service in (self.processor, self.sink):
            if service is not None and service.proc is not None and not service.alive():
                tail = service.log.read_text(errors="replace").splitlines()[-15:]
                self.crashes.append(
                    f"{service.name} exited on its own (code {service.proc.returncode}): " + " | ".join(tail)[-1500:]
                )
                log(f"{service.name} exited on its own (code {service.proc.returncode}); restarting")
                self.faults[f"{service.name} crashed by itself"] += 1
                service.start()

    def kill_processor(self) -> None:
        """kill -9 once the worker is up and joining (at a random moment after Ready), or during its start-up."""
        assert self.processor is not None
        if self.rng.random() < 0.7:
            ready = self.processor.wait_ready(READY, timeout=90)
            time.sleep(self.rng.uniform(0.0, 5.0))
            label = "running, after Ready" if ready else "not Ready after 90 s"
        else:
            time.sleep(self.rng.uniform(0.5, 4.0))
            label = "running" if self.processor.ready(READY) else "during start-up/recovery"
        self.processor.kill()
        self.faults[f"kill -9 processor ({label})"] += 1
        self.processor.start()

    def kill_sink(self) -> None:
        assert self.sink is not None
        if self.rng.random() < 0.5:
            if self.wait_new_file(timeout=10):
                self.sink.kill()
                self.faults["kill -9 sink (right after a new file)"] += 1
            else:
                self.sink.kill()
                self.faults["kill -9 sink (no new file seen in 10 s)"] += 1
        else:
            time.sleep(self.rng.uniform(0, 3))
            self.sink.kill()
            self.faults["kill -9 sink (random moment)"] += 1
        self.sink.start()

    def wait_new_file(self, timeout: float) -> bool:
        assert self.moto is not None
        client = self.moto.client()
        before = self.count_parquet(client)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count_parquet(client) > before:
                return True
            time.sleep(0.02)
        return False

    def count_parquet(self, client: Any) -> int:
        n = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            n += sum(1 for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
        return n

    def restart_broker(self) -> None:
        assert self.tansu is not None
        self.tansu.kill()
        time.sleep(self.rng.uniform(0.5, 2.0))
        t0 = time.monotonic()
        self.tansu.restart()
        self.notes.append(f"broker restarted on port {self.tansu.port} in {time.monotonic() - t0:.1f} s")
        self.faults["kill -9 broker + restart (log in S3)"] += 1

    def cut(self, proxy: TcpProxy | None, what: str, mode: str, seconds: float) -> None:
        assert proxy is not None
        proxy.cut(mode)  # type: ignore[arg-type]
        log(f"{what} cut ({mode}) for {seconds:.0f} s")
        time.sleep(seconds)
        proxy.restore()
        self.faults[f"{what} cut, {mode}, {seconds:.0f} s"] += 1

    def schedule(self) -> list[tuple[str, Callable[[], None]]]:
        p = self.plan
        steps: list[tuple[str, Callable[[], None]]] = []
        steps += [("kill processor", self.kill_processor)] * p.processor_kills
        steps += [("kill sink", self.kill_sink)] * p.sink_kills
        steps += [("restart broker", self.restart_broker)] * p.broker_restarts
        for mode, seconds in p.broker_cuts:
            steps.append(
                (f"cut broker {mode}", functools.partial(self.cut, self.kafka_proxy, "broker network", mode, seconds))
            )
        for mode, seconds in p.s3_outages:
            steps.append((f"cut S3 {mode}", functools.partial(self.cut, self.s3_proxy, "object store", mode, seconds)))
        self.rng.shuffle(steps)
        steps.insert(len(steps) // 3, ("send bad inputs", lambda: None))  # built when sent: see run_plan
        return steps

    # -- reading back --------------------------------------------------------------------------

    def read_log(self, cache: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """Every row of every Parquet file per table, read with pyarrow (files are immutable: read once)."""
        import s3fs

        assert self.moto is not None
        fs = s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            client_kwargs={"endpoint_url": self.moto.endpoint},
            skip_instance_cache=True,
        )
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        for table in TABLES:
            base = f"{self.bucket}/{self.prefix}/{table}"
            try:
                paths = sorted(p for p in fs.find(base) if p.endswith(".parquet") and "/." not in p)
            except FileNotFoundError:
                paths = []
            for path in paths:
                if path not in cache:
                    data = fs.cat_file(path)
                    cache[path] = pq.read_table(io.BytesIO(data), columns=COLUMNS[table]).to_pylist()
                    for row in cache[path]:
                        row["_file"] = path
                out[table] += cache[path]
        return out

    def topic_pairs(self) -> set[str]:
        """pair_ids on the pairs topic (to tell a processor loss from a sink loss)."""
        consumer = Consumer({**self.kafka_config, "group.id": f"faults-{uuid.uuid4().hex[:6]}", "log_level": 0})
        consumer.assign([TopicPartition(self.topics.pairs, p, -2) for p in range(self.plan.partitions)])
        ids: set[str] = set()
        idle = time.monotonic()
        try:
            while time.monotonic() - idle < 5:
                msgs = consumer.consume(1000, 0.5)
                if msgs:
                    idle = time.monotonic()
                for m in msgs:
                    if m.error() is None:
                        with contextlib.suppress(Exception):
                            ids.add(CODEC.decode(m.value() or b"", "PreferencePair")["pair_id"])
        finally:
            consumer.close()
        return ids


# -- expectations and checks -------------------------------------------------------------------


@dataclass
class Expected:
    pairs: set[tuple[str, int, int]] = field(default_factory=set)
    signals: set[tuple[str, int]] = field(default_factory=set)
    unmatched: dict[str, set[str]] = field(default_factory=dict)
    dead_letters: list[tuple[str, Sent, Expect]] = field(default_factory=list)  # (label, sent, expectation)
    at_offset: list[tuple[str, Sent, Expect, BadInput | None]] = field(default_factory=list)


def expectations(events: list[GeneratedEvent], sent: list[Sent], bad: list[BadInput], movers: set[Any]) -> Expected:
    truth = expected_outcomes(events)
    exp = Expected(set(truth.pairs) | movers, set(truth.signals), {k: set(v) for k, v in truth.unmatched.items()})
    by_label = {s.label: s for s in sent}
    index = {id(e): i for i, e in enumerate(events)}
    for e in truth.dead_letters:
        item = by_label[f"gen:{index[id(e)]}"]
        exp.at_offset.append((f"generated {e.invalid_reason}", item, Expect("dead_letter"), None))
    for b in bad:
        item = b.sent_at["item"]
        exp.at_offset.append((b.kind, item, b.expect, b))
        if b.expect.table == "pairs" and b.feedback_id:
            chosen, rejected = b.expect.detail
            if not b.expect.alternatives:
                exp.pairs.add((b.feedback_id, chosen, rejected))
    return exp


def _offset_key(row: dict[str, Any]) -> tuple[str, int, int]:
    so = row["source_offset"]
    return (so["topic"], so["partition"], so["offset"])


def check(run: Run, exp: Expected, rows: dict[str, list[dict[str, Any]]], topic_ids: set[str]) -> dict[str, Any]:
    from preflog.processors.pairs import pair_id  # only to name a pair on the topic; expectations are independent

    pair_rows = rows["pairs"]
    stored_pairs = Counter((r["feedback_id"], r["chosen_index"], r["rejected_index"]) for r in pair_rows)
    pair_ids = Counter(r["pair_id"] for r in pair_rows)
    lost = exp.pairs - set(stored_pairs)
    bad_pair_alternatives = {
        (b.feedback_id, *b.expect.alternatives[0].detail)
        for _, _, e, b in exp.at_offset
        if b is not None and b.feedback_id and e.alternatives and e.alternatives[0].table == "pairs"
    }
    unexpected = set(stored_pairs) - exp.pairs - bad_pair_alternatives
    lost_in = Counter("processor (not on the pairs topic)" if pair_id(*p) not in topic_ids else "sink" for p in lost)

    signal_rows = rows["unpaired"]
    stored_signals = Counter((r["feedback_id"], r["completion_index"]) for r in signal_rows)
    signal_ids = Counter(r["signal_id"] for r in signal_rows)

    unmatched_rows = rows["unmatched"]
    by_reason: dict[str, Counter[str]] = defaultdict(Counter)
    for r in unmatched_rows:
        ident = r["request_id"] if r["reason"] == "NO_FEEDBACK" else r["feedback_id"]
        by_reason[r["reason"]][ident] += 1
    dl_by_offset: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows["dead_letter"]:
        dl_by_offset[_offset_key(r)].append(r)
    um_by_offset: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in unmatched_rows:
        um_by_offset[_offset_key(r)].append(r)

    # unmatched expected from the bad-input list (by offset) join the generator's (by id)
    expected_unmatched = {k: set(v) for k, v in exp.unmatched.items()}
    for _, _item, e, b in exp.at_offset:
        if b is not None and e.table == "unmatched" and not e.alternatives:
            ident = b.request_id if e.detail == "NO_FEEDBACK" else b.feedback_id
            if ident:
                expected_unmatched.setdefault(e.detail, set()).add(ident)
    allowed = {
        (b.request_id if a.detail == "NO_FEEDBACK" else b.feedback_id)
        for _, _, e, b in exp.at_offset
        if b is not None
        for a in (e, *e.alternatives)
        if a.table == "unmatched"
    }
    unmatched_report = {}
    for reason in sorted(set(expected_unmatched) | set(by_reason)):
        want, got = expected_unmatched.get(reason, set()), by_reason.get(reason, Counter())
        unmatched_report[reason] = {
            "expected": len(want),
            "stored": len(set(got)),
            "missing": len(want - set(got)),
            "unexpected": len(set(got) - want - allowed),
            "duplicated": sum(1 for n in got.values() if n > 1),
            "missing_ids": sorted(want - set(got))[:10],
        }

    # every record sent for a reason: its outcome, found by its offset
    bad_report = []
    accounted = total = dl_ok = dl_total = companions_wrong = 0
    for label, item, e, b in exp.at_offset:
        outcome = _outcome(item, e, b, dl_by_offset, um_by_offset, stored_pairs)
        is_bad = b is None or not b.companion
        companions_wrong += not is_bad and not outcome["ok"]
        if is_bad:
            total += 1
            accounted += outcome["ok"]
            if e.table == "dead_letter":
                dl_total += 1
                dl_ok += outcome["ok"]
        bad_report.append({"kind": label, "companion": not is_bad, "expected": e.describe(), **outcome})

    never_delivered = [s.label for s in run.sender.sent if not s.offsets] if run.sender else []
    pairs_duplicated = sum(n - 1 for n in pair_ids.values() if n > 1)
    signals_duplicated = sum(n - 1 for n in signal_ids.values() if n > 1)
    dl_duplicated = sum(len(v) - 1 for v in dl_by_offset.values() if len(v) > 1)
    um_duplicated = sum(len(v) - 1 for v in um_by_offset.values() if len(v) > 1)
    lost_detail = []
    for fid, chosen, rejected in sorted(lost)[:20]:
        traces = [f"unmatched {u['reason']}" for u in unmatched_rows if u["feedback_id"] == fid]
        lost_detail.append(
            {
                "pair": [fid, chosen, rejected],
                "pair_id": pair_id(fid, chosen, rejected),
                "on_topic": pair_id(fid, chosen, rejected) in topic_ids,
                "traces": traces,
            }
        )
    return {
        "pairs": {
            "expected": len(exp.pairs),
            "stored": len(stored_pairs),
            "rows": len(pair_rows),
            "lost": len(lost),
            "lost_in": dict(lost_in),
            "lost_detail": lost_detail,
            "duplicated": pairs_duplicated,
            "unexpected": len(unexpected),
            "unexpected_sample": [list(u) for u in sorted(unexpected)[:10]],
        },
        "signals": {
            "expected": len(exp.signals),
            "stored": len(stored_signals),
            "lost": len(exp.signals - set(stored_signals)),
            "duplicated": signals_duplicated,
            "unexpected": len(set(stored_signals) - exp.signals),
        },
        "unmatched": unmatched_report,
        "unmatched_duplicated_by_offset": um_duplicated,
        "dead_letters": {"rows": len(rows["dead_letter"]), "duplicated_by_offset": dl_duplicated},
        "bad_inputs": {
            "accounted": accounted,
            "expected": total,
            "dead_lettered_with_reason": dl_ok,
            "dead_letters_expected": dl_total,
            "companions_wrong": companions_wrong,
            "records": bad_report,
        },
        "never_delivered": never_delivered,
    }


def _outcome(
    item: Sent,
    e: Expect,
    b: BadInput | None,
    dl: dict[tuple[str, int, int], list[dict[str, Any]]],
    um: dict[tuple[str, int, int], list[dict[str, Any]]],
    stored_pairs: Counter[tuple[str, int, int]],
) -> dict[str, Any]:
    """What became of one record, by its offset(s), and whether that is one of the expected outcomes."""
    found: list[str] = []
    for off in item.offsets:
        found += [f"dead_letter {r['error_class']}: {r['reason'][:160]}" for r in dl.get(off, [])]
        found += [f"unmatched {r['reason']}" for r in um.get(off, [])]
    if b is not None and b.feedback_id:
        found += [f"pairs {(c, r)}" for (f, c, r) in stored_pairs if f == b.feedback_id]
    ok = False
    for option in (e, *e.alternatives):
        if option.table == "none":
            ok = ok or not found
        elif option.table == "dead_letter":
            dls = [f for f in found if f.startswith("dead_letter")]
            has_reason = all(len(f.split(": ", 1)[-1]) > 0 for f in dls)
            right_class = option.detail is None or all(f.startswith(f"dead_letter {option.detail}:") for f in dls)
            ok = ok or (len(dls) >= 1 and len(found) == len(dls) and has_reason and right_class)
        elif option.table == "unmatched":
            ok = ok or (bool(found) and all(f == f"unmatched {option.detail}" for f in found))
        elif option.table == "pairs":
            ok = ok or found == [f"pairs {tuple(option.detail)}"]
    return {"ok": ok, "found": found, "offsets": item.offsets}


def reconcile(run: Run) -> dict[str, Any]:
    """``preflog reconcile --final --json`` over the audit log: the traffic has stopped and drained."""
    assert run.sink is not None and run.moto is not None and run.processor is not None
    env = {**run.processor.env, **run.sink.env, "PREFLOG_SINK__S3_ENDPOINT_URL": run.moto.endpoint}
    result = subprocess.run(
        [sys.executable, "-m", "preflog", "reconcile", "--final", "--json"],
        env=env,
        cwd=run.code_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out: dict[str, Any] = {"available": True, "exit_code": result.returncode}
    try:
        out["report"] = json.loads(result.stdout)
    except ValueError:
        out["stdout"] = result.stdout[-2000:]
        out["stderr"] = result.stderr[-2000:]
    return out


# -- main --------------------------------------------------------------------------------------


def run_plan(plan: Plan, workdir: Path | None = None) -> dict[str, Any]:
    """Run ``plan`` end to end; returns the results (``results['ok']`` says whether the goal was met)."""
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"preflog-faults-{plan.name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = Run(plan, workdir)
    log(f"fault suite ({plan.name}) in {workdir}")
    try:
        run.start()
        events, event_start = run.traffic()
        bad: list[BadInput] = []
        stop = threading.Event()
        traffic = threading.Thread(target=run.send_traffic, args=(events, stop), daemon=True)
        wall0 = time.monotonic()
        traffic.start()
        time.sleep(3)
        for name, step in run.schedule():
            run.watchdog()
            gap = run.rng.uniform(1.0, 4.0) if plan.name == "short" else run.rng.uniform(3.0, 9.0)
            time.sleep(gap)
            log(f"fault: {name}")
            if name == "send bad inputs":  # event times near the traffic's current event time
                now = event_start + timedelta(seconds=time.monotonic() - wall0)
                bad = bad_inputs(plan.seed, now, plan.bad_kinds)
                run.send_bad(bad)
            step()
        traffic.join()
        run.watchdog()
        assert run.sender is not None
        undelivered = run.sender.flush_and_retry()
        movers = run.movers()
        run.sender.flush_and_retry()
        log(f"traffic done: {len(run.sender.sent)} records sent ({undelivered} undelivered before movers)")
        exp = expectations(events, run.sender.sent, bad, movers)
        rows = converge(run, exp)
        dump(run, rows)
        topic_ids = run.topic_pairs()
        results = check(run, exp, rows, topic_ids)
        results["reconcile"] = reconcile(run)
    finally:
        run.close()
    results.update(
        plan=asdict(plan),
        code=run.version + (" (services run from a copy taken at the start)" if plan.snapshot else ""),
        workdir=str(workdir),
        converged=run.converged,
        runtime_s=round(time.monotonic() - started, 1),
        faults=dict(run.faults),
        crashes=run.crashes,
        notes=run.notes,
        events_sent={
            "generated": len(events),
            "bad inputs (with companions)": len(bad),
            "movers": len(movers) * 2,
            "records delivered": sum(len(s.offsets) for s in run.sender.sent) if run.sender else 0,
        },
    )
    results["ok"] = ok(results)
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (workdir / "table.txt").write_text(table(results) + "\n")
    return results


def ok(results: dict[str, Any]) -> bool:
    """The goal: nothing lost, nothing duplicated, every bad input and every expected outcome accounted for."""
    p, b = results["pairs"], results["bad_inputs"]
    return (
        p["lost"] == 0
        and p["duplicated"] == 0
        and p["unexpected"] == 0
        and results["signals"]["lost"] == 0
        and results["signals"]["duplicated"] == 0
        and b["accounted"] == b["expected"]
        and b["companions_wrong"] == 0
        and all(v["missing"] == 0 and v["duplicated"] == 0 for v in results["unmatched"].values())
        and results["dead_letters"]["duplicated_by_offset"] == 0
        and not results["never_delivered"]
    )


def dump(run: Run, rows: dict[str, list[dict[str, Any]]]) -> None:
    """What was sent (with offsets) and what the audit log holds, for whoever debugs a failure."""
    assert run.sender is not None
    with (run.dir / "sent.jsonl").open("w") as out:
        for s in run.sender.sent:
            key = s.key.decode(errors="replace") if s.key is not None else None
            out.write(json.dumps({"label": s.label, "role": s.role, "key": key, "offsets": s.offsets}) + "\n")
    (run.dir / "audit_rows.json").write_text(json.dumps(rows, default=str))
    assert run.moto is not None
    client = run.moto.client()
    listing: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=run.prefix):
        for o in page.get("Contents", []):
            entry: dict[str, Any] = {"size": o["Size"], "modified": str(o["LastModified"])}
            if o["Key"].endswith(".json"):
                body = client.get_object(Bucket=run.bucket, Key=o["Key"])["Body"].read()
                with contextlib.suppress(ValueError):
                    entry["manifest"] = json.loads(body)
            listing[o["Key"]] = entry
    (run.dir / "audit_objects.json").write_text(json.dumps(listing, indent=1, default=str))


def converge(run: Run, exp: Expected) -> dict[str, list[dict[str, Any]]]:
    """Read the log until everything expected is there, or nothing new arrived for ``stall_s``."""
    cache: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + run.plan.converge_timeout_s
    last_change, last_count = time.monotonic(), -1
    while True:
        run.watchdog()
        rows = run.read_log(cache)
        stored = {(r["feedback_id"], r["chosen_index"], r["rejected_index"]) for r in rows["pairs"]}
        um = {r["request_id"] if r["reason"] == "NO_FEEDBACK" else r["feedback_id"] for r in rows["unmatched"]}
        want_um = set().union(*exp.unmatched.values()) if exp.unmatched else set()
        done = exp.pairs <= stored and want_um <= um
        if len(cache) != last_count:
            last_change, last_count = time.monotonic(), len(cache)
        now = time.monotonic()
        if done or now > deadline or now - last_change > run.plan.stall_s:
            log(
                f"converged={done}: {len(stored & exp.pairs)}/{len(exp.pairs)} pairs, "
                f"{len(um & want_um)}/{len(want_um)} unmatched, {len(cache)} files"
            )
            run.converged = done
            time.sleep(4)  # anything extra (a duplicate) shows up now
            return run.read_log(cache)
        time.sleep(2)


def table(results: dict[str, Any]) -> str:
    p, s, b = results["pairs"], results["signals"], results["bad_inputs"]
    rows: list[tuple[str, str]] = [("faults injected", "")]
    rows += [(f"  {k}", str(v)) for k, v in sorted(results["faults"].items())]
    rows += [("events sent", "")]
    rows += [(f"  {k}", str(v)) for k, v in results["events_sent"].items()]
    rows += [
        ("everything expected arrived", "yes" if results["converged"] else "NO (stopped waiting: no progress)"),
        ("pairs expected / stored", f"{p['expected']} / {p['stored']} ({p['rows']} rows)"),
        ("pairs lost", f"{p['lost']}" + (f" {p['lost_in']}" if p["lost"] else "")),
        ("pairs duplicated (same pair_id twice)", str(p["duplicated"])),
        ("pairs unexpected", str(p["unexpected"])),
        (
            "signals expected / stored / lost / dup",
            f"{s['expected']} / {s['stored']} / {s['lost']} / {s['duplicated']}",
        ),
    ]
    for reason, u in results["unmatched"].items():
        rows.append(
            (
                f"unmatched {reason} expected / stored",
                f"{u['expected']} / {u['stored']} (missing {u['missing']}, unexpected {u['unexpected']}, "
                f"dup {u['duplicated']})",
            )
        )
    rows += [
        (
            "dead letters stored (dup by offset)",
            f"{results['dead_letters']['rows']} ({results['dead_letters']['duplicated_by_offset']})",
        ),
        ("unmatched dup by source offset", str(results["unmatched_duplicated_by_offset"])),
        (
            "bad inputs dead-lettered with a reason / expected",
            f"{b['dead_lettered_with_reason']} / {b['dead_letters_expected']}",
        ),
        ("bad inputs with their expected outcome / all", f"{b['accounted']} / {b['expected']}"),
        ("valid companions of bad inputs with a wrong outcome", str(b["companions_wrong"])),
        ("records never delivered", str(len(results["never_delivered"]))),
        ("services crashed by themselves", str(len(results["crashes"]))),
        ("reconcile", _reconcile_summary(results["reconcile"])),
        ("code", results["code"]),
        ("runtime", f"{results['runtime_s']} s"),
        ("RESULT", "PASS" if results["ok"] else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    wrong = [r for r in b["records"] if not r["ok"]]
    if wrong:
        lines.append("")
        lines.append("records not accounted for as expected:")
        for r in wrong:
            tag = " (companion)" if r["companion"] else ""
            lines.append(
                f"  - {r['kind']}{tag}: expected {r['expected']}; found {r['found'] or 'nothing'} at {r['offsets']}"
            )
    if p["lost_detail"]:
        lines.append("")
        lines.append("lost pairs (first 20):")
        for d in p["lost_detail"]:
            lines.append(f"  - {d['pair']} on topic: {d['on_topic']} traces: {d['traces'] or 'none'}")
    for reason, u in results["unmatched"].items():
        if u["missing"]:
            lines.append(f"missing unmatched {reason}: {u['missing_ids']}")
    for c in results["crashes"]:
        lines.append(f"crash: {c}")
    return "\n".join(lines)


def _reconcile_summary(r: dict[str, Any]) -> str:
    if not r.get("available"):
        return r.get("note", "not run")
    report = r.get("report")
    if isinstance(report, dict):
        ledgers = report.get("inputs", []) + report.get("outputs", [])
        bad = [f"{led.get('topic')}[{led.get('partition')}]" for led in ledgers if not led.get("ok", True)]
        problems = list(report.get("problems", [])) + [p for led in ledgers for p in led.get("problems", [])]
        pending = sum(led.get("counts", {}).get("pending", 0) for led in ledgers)
        text = f"ok={report.get('ok')} (exit {r['exit_code']}); {len(problems)} problem(s); {pending} pending"
        if bad:
            text += f" in {', '.join(bad)}"
        if problems:
            text += f"; first: {str(problems[0])[:200]}"
        return text
    return f"exit {r['exit_code']}; unparsed output: {r.get('stderr', '')[-300:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full suite (about 15 minutes)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON (after the table)")
    parser.add_argument("--requests", type=int, help="override the number of generated requests")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--store", choices=["rocksdb://", "memory://"], help="the processor's table store")
    parser.add_argument("--workdir", type=Path, help="where logs go (default: a new temp folder)")
    parser.add_argument("--list-bad-inputs", action="store_true", help="print each kind of bad input and its outcome")
    args = parser.parse_args(argv)
    if args.list_bad_inputs:
        for b in bad_inputs(0, datetime.now(timezone.utc)):
            role = f"{b.role} (valid companion)" if b.companion else b.role
            print(f"{b.kind:60s} {role:28s} -> {b.expect.describe()}")
        return 0
    plan = FULL if args.full else SHORT
    if args.requests:
        plan.requests = args.requests
    if args.seed is not None:
        plan.seed = args.seed
    if args.store:
        plan.store = args.store
    results = run_plan(plan, args.workdir)
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
