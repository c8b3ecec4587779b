"""The cost of privacy (issue 20): each stage with privacy on beside the same stage with it off, in one run.

    python benchmarks/privacy_cost.py [--requests 10000] [--sink-rows 30000] [--rows 100000] [--rounds 3]
        [--worker-rounds 2] [--build-rounds 1] [--per-value] [--stages sdk,processor,worker,sink,read,build]
        [--prompt-bytes 800-2400] [--answer-bytes 300-2000] [--dir /big/disk] [--json rows.json]

About 5 minutes on 2 cores at the defaults (6 with ``--per-value``). Every text is of production size
(:mod:`realistic_text`). Each stage runs plain and sealed on the same input, alternated (so a busy machine
slows both), best of ``--rounds``; the figure compared is the time, and the goal is sealed within 10% of
plain (a time ratio <= 1.10x). The table also lists every round's time, to show how noisy the machine was:

* ``sdk``: ``PreflogProducer.log_inference``/``log_feedback`` of generated traffic (``--requests``, no
  invalid records) into the embedded broker, without and with a :class:`~preflog.privacy.sealer.Sealer`
  (a :class:`~preflog.privacy.store.DirKeyStore`, as the embedded stack has). Timed twice: the calls
  (the caller's thread: validate, seal, encode, hand to librdkafka) and until ``flush`` returns. The
  subjects' data keys are made before the timed rounds (the first event of a subject stores its key);
  their count and time are printed;
* ``processor``: the pure :class:`~preflog.processors.join.Joiner` (dict state, batches of 500 as in the
  worker: :func:`joiner_throughput.join_once`) over the bytes the SDK sent, plain and sealed (twice the rounds);
* ``worker``: ``preflog process`` (the stack's processor settings, RocksDB) over the round-1 topics of the
  SDK stage, events/s from its first input event to its last (:func:`processor_throughput.run_processor`:
  start-up and group join left out), best of ``--worker-rounds``, each a consumer group of its own;
* ``sink``: the audit-log sink (:func:`sink_throughput.sink_run`) over the pairs the Joiner made of each,
  repeated with fresh pair ids up to ``--sink-rows``;
* ``read``: ``read_pairs`` of a log of ``--rows`` pairs, plain, and sealed and opened with a
  :class:`~preflog.privacy.keyring.Keyring` (its loading timed too), each in a child process (peak RSS);
* ``build``: ``preflog dataset build`` (parquet and trl, gzip) of the same two logs, in child processes.

With ``--per-value`` the sealed log is also read and built with the keyring opening value by value, as it did
before it opened a column at a time: the two lines beside each other show what that bought.

The two logs (:func:`write_file`) have two pairs a request (a ranking of three answers: the prompt and the
chosen answer shared, each pair its own rejected one; no exact duplicates: dataset_build.py's log, whose
texts repeat 4 and 10 times, compresses 12x as a plain log and not at all sealed). The sealed one is
sealed row by row by the SDK's :class:`Sealer` (1,000 users: prompt, chosen, rejected and metadata values
sealed; user, session and annotator ids pseudonymised).
"""

from __future__ import annotations

import argparse
import functools
import gc
import shutil
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bench_log import Job, child, encoded, gb, maker, sample_table, set_column, write_files
from realistic_text import DEFAULT_ANSWER, DEFAULT_PROMPT, byte_range
from report_rows import Row, write_rows

from preflog.privacy.keys import generate_master, master_from_file
from preflog.privacy.sealer import Privacy, Sealer
from preflog.privacy.store import DirKeyStore
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings

GROUP = "privacy"
GOAL = 1.10  # sealed within 10% of plain
SECRET = b"privacy-cost-benchmark-secret-01"
USERS = 1_000
PER_FILE = 50_000
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
STAGES = ("sdk", "processor", "worker", "sink", "read", "build")
MODES = ("plain", "sealed")

READ_CHILD = """
import sys, time
from pathlib import Path
from report_rows import peak_rss_kb
from preflog.sinks.read import read_pairs
url, keys, master, per_value = sys.argv[1:5]
started = time.perf_counter()
kwargs = {}
if keys:
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.keys import master_from_file
    from preflog.privacy.store import DirKeyStore
    store = DirKeyStore(Path(keys))
    kwargs["keys"] = ring = Keyring(store.load(), [master_from_file(Path(master), "master key")], store)
    if per_value:
        opener = ring.open
        ring.open = lambda value: opener(value)
table = read_pairs(url, **kwargs)
took = time.perf_counter() - started
print(table.num_rows, took, peak_rss_kb())
"""

BUILD_CHILD = """
import sys, time
from pathlib import Path
from report_rows import peak_rss_kb
from preflog.dataset.build import build
from preflog.dataset.select import Selection
url, root, name, keys, master, per_value = sys.argv[1:7]
started = time.perf_counter()
keyring = None
if keys:
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.keys import master_from_file
    from preflog.privacy.store import DirKeyStore
    store = DirKeyStore(Path(keys))
    keyring = Keyring(store.load(), [master_from_file(Path(master), "master key")], store)
    if per_value:
        opener = keyring.open
        keyring.open = lambda value: opener(value)
manifest = build(url, Path(root), name, Selection(), formats=("parquet", "trl"), compress="gzip", keyring=keyring)
took = time.perf_counter() - started
print("privacy", manifest.get("privacy"))
print(sum(manifest["rows"].values()), took, peak_rss_kb())
"""


# ---------------------------------------------------------------------------------------------------- the figures


class Stage:
    """One stage's figures: seconds per round of each mode (the best compared), peak RSS (MB) when measured."""

    def __init__(self, name: str, what: str, count: int, unit: str) -> None:
        self.name, self.what, self.count, self.unit = name, what, count, unit
        self.seconds: dict[str, list[float]] = {m: [] for m in MODES}
        self.rss: dict[str, float] = {}

    def best(self, mode: str) -> float:
        return min(self.seconds[mode])

    def rate(self, mode: str) -> float:
        return self.count / self.best(mode)

    @property
    def ratio(self) -> float:
        """Sealed time over plain time: 1.00 costs nothing."""
        return self.best("sealed") / self.best("plain")


def alternate(
    rounds: int, run: Callable[[str, int], float], times: Stage | dict[str, list[float]], modes: tuple[str, ...] = MODES
) -> None:
    """``run(mode, round)`` for each round, plain then sealed, then sealed then plain, ...; into ``times``."""
    into = times.seconds if isinstance(times, Stage) else times
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else reversed(modes):
            into[mode].append(run(mode, r))


# --------------------------------------------------------------------------------------------- SDK (and inputs)

Captured = tuple[str, str, bytes, int]  # topic role (inference, feedback), key, value, event time (ms)


class CapturingProducer(PreflogProducer):
    """A PreflogProducer that also keeps what it sends (the processor stage's input)."""

    captured: list[tuple[str, bytes]] | None = None

    def send(self, topic: str, key: str | bytes | None, value: bytes) -> Future[Any]:
        if self.captured is not None:
            self.captured.append((topic, value))
        return super().send(topic, key, value)


def sdk_events(requests: int, args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Generated traffic (no invalid records) with prompts and answers of production size."""
    events = [e for e in generate(TrafficProfile(requests=requests, invalid=0.0), start=START) if e.record]
    inferences = [e.record for e in events if e.event_type == "inference" and e.record is not None]
    texts = maker()
    prompts = texts.texts(0, np.arange(len(inferences)), args.prompt_bytes).to_pylist()
    n_answers = sum(len(r["candidates"]) for r in inferences)
    answers = iter(texts.texts(1, np.arange(n_answers), args.answer_bytes).to_pylist())
    real: dict[int, dict[str, Any]] = {}
    for record, prompt in zip(inferences, prompts, strict=True):
        messages = [m if m["role"] != "user" else {**m, "content": prompt} for m in record["prompt_messages"]]
        candidates = [{**c, "text": next(answers)} for c in record["candidates"]]
        real[id(record)] = {**record, "prompt": prompt, "prompt_messages": messages, "candidates": candidates}
    out = []
    for e in events:
        assert e.record is not None
        out.append((e.event_type, real.get(id(e.record), e.record)))
    return out


def topics_of(mode: str, r: int) -> TopicSettings:
    """Topics of their own for each mode and round of the SDK stage."""
    base = TopicSettings()
    return TopicSettings(**{role: f"privacy-bench.{mode}.{r}.{role}" for role in base.all()})


def sdk_round(
    bootstrap: str, topics: TopicSettings, sealer: Sealer | None, events: list[tuple[str, dict[str, Any]]]
) -> tuple[float, float, list[Captured]]:
    """Log ``events`` through the SDK: seconds of the calls, seconds until flushed, and what was sent."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 500_000}
    log = CapturingProducer(conf, SingleObjectCodec(), topics, max_block_ms=10_000, sealer=sealer)
    log.captured = []
    try:
        started = time.perf_counter()
        for kind, record in events:
            if kind == "inference":
                log.log_inference(record)
            else:
                log.log_feedback(record)
        calls = time.perf_counter() - started
        left = log.flush(300)
        total = time.perf_counter() - started
    finally:
        log.close()
    if left:
        raise RuntimeError(f"{left} events undelivered")
    times = [int(r["event_time"].timestamp() * 1000) for _, r in events]
    role = {topics.inference: "inference", topics.feedback: "feedback"}
    keys = [r["request_id"] for _, r in events]
    sent = [(role[t], k, v, ts) for (t, v), k, ts in zip(log.captured, keys, times, strict=True)]
    return calls, total, sent


def warm(sealer: Sealer, events: list[tuple[str, dict[str, Any]]]) -> float:
    """Make the data key of every subject of ``events`` (what the first event of each subject pays); seconds."""
    from preflog.schemas.events import feedback_record, inference_record

    started = time.perf_counter()
    for kind, record in events:
        if kind == "inference":
            sealer.inference(inference_record(dict(record)), Privacy())
        else:
            sealer.feedback(feedback_record(dict(record)), Privacy())
    return time.perf_counter() - started


# -------------------------------------------------------------------------------------------------- processor


def joiner_input(sent: list[Captured]) -> list[tuple[str, int, int, bytes, bytes, int]]:
    """What the SDK sent as joiner_throughput's inputs: four partitions by key, per-partition offsets."""
    offsets: Counter[tuple[str, int]] = Counter()
    out = []
    for role, key, value, ts in sent:
        partition = zlib.crc32(key.encode()) % 4
        out.append((role, partition, offsets[role, partition], key.encode(), value, ts))
        offsets[role, partition] += 1
    return out


def joined_pairs(data: list[tuple[str, int, int, bytes, bytes, int]], wall: int) -> list[dict[str, Any]]:
    """The pair records the Joiner makes of ``data``."""
    from preflog.processors.join import JoinConfig, Joiner

    joiner = Joiner(JoinConfig(), SingleObjectCodec(), {}, "inference", "feedback", wall_ms=lambda: wall)
    return [e.record for record in data for e in joiner.process(*record) if e.role == "pairs"]


# ------------------------------------------------------------------------------------------------ the two logs


_SEALERS: dict[str, Sealer] = {}


def _sealer(keys: Path) -> Sealer:
    """This process's sealer (one per writing process, as one per producer)."""
    if str(keys) not in _SEALERS:
        master = master_from_file(keys.parent / "master.key", "master key")
        _SEALERS[str(keys)] = Sealer(SECRET, master, DirKeyStore(keys))
    return _SEALERS[str(keys)]


def _ids(prefix: str, i: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(pc.cast(pa.array(i), pa.string()), 12, "0"), "")


def write_file(job: Job, keys: str = "") -> tuple[int, int]:
    """One file of a log, sealed by the SDK's sealer when ``keys`` (a key directory) is given."""
    n = job.n
    i = np.arange(job.first, job.first + n, dtype=np.int64)
    request = i // 2  # two pairs a request (a ranking of three answers): the prompt and the chosen answer shared
    table = sample_table(n)
    texts = maker()
    columns = {
        "pair_id": _ids("00000000-0000-4000-8000-", i),
        "feedback_id": _ids("00000000-0000-4000-9000-", i),
        "request_id": _ids("00000000-0000-4000-a000-", request),
        "prompt": texts.texts(0, request, job.prompt_bytes),
        "chosen": texts.texts(1, request * 4, job.answer_bytes),
        "rejected": texts.texts(1, request * 4 + 1 + i % 2, job.answer_bytes),
    }
    text = sum(pc.sum(pc.binary_length(columns[c])).as_py() or 0 for c in ("prompt", "chosen", "rejected"))
    if keys:
        columns.update(_sealed(table, columns, i, _sealer(Path(keys))))
    for name, column in columns.items():
        table = set_column(table, name, column)
    table = set_column(table, "prompt_messages", pa.nulls(n, table.schema.field("prompt_messages").type))
    return text, encoded(table, job.root, job.first)


def _sealed(table: pa.Table, columns: dict[str, pa.Array], i: np.ndarray, sealer: Sealer) -> dict[str, pa.Array]:
    """The personal columns of rows ``i`` as the SDK seals them (a user of ``USERS`` each)."""
    sample = table.slice(0, 1).to_pylist()[0]
    when = sample["inference_time"]
    rids = columns["request_id"].to_pylist()
    prompts, chosen, rejected = (columns[c].to_pylist() for c in ("prompt", "chosen", "rejected"))
    out: dict[str, list[Any]] = {c: [] for c in ("prompt", "chosen", "rejected", "inference_metadata",
                                                 "feedback_metadata", "context", "source")}  # fmt: skip
    for k, rid in enumerate(rids):
        user = f"user-{int(i[k]) % USERS}"
        inference = sealer.inference({
            "request_id": rid, "event_time": when, "prompt": prompts[k], "prompt_messages": None,
            "candidates": [{"index": 0, "text": chosen[k]}, {"index": 1, "text": rejected[k]}],
            "context": {**sample["context"], "user_id": user, "session_id": f"s-{user}"},
            "metadata": dict(sample["inference_metadata"]),
        }, Privacy())  # fmt: skip
        feedback = sealer.feedback({
            "request_id": rid, "event_time": when, "source": sample["source"], "rationale": None,
            "metadata": dict(sample["feedback_metadata"]),
        }, Privacy())  # fmt: skip
        out["prompt"].append(inference["prompt"])
        out["chosen"].append(inference["candidates"][0]["text"])
        out["rejected"].append(inference["candidates"][1]["text"])
        out["inference_metadata"].append(list(inference["metadata"].items()))
        out["feedback_metadata"].append(list(feedback["metadata"].items()))
        out["context"].append(inference["context"])
        out["source"].append(feedback["source"])
    return {c: pa.array(v, table.schema.field(c).type) for c, v in out.items()}


def write_log(root: Path, rows: int, args: argparse.Namespace, keys: Path | None) -> tuple[int, int, float]:
    """A log of ``rows`` pairs under ``root`` (sealed with the keys in ``keys``): text and Parquet bytes, seconds."""
    jobs = [Job(root, first, min(PER_FILE, rows - first), "realistic", args.prompt_bytes, args.answer_bytes, rows)
            for first in range(0, rows, PER_FILE)]  # fmt: skip
    started = time.perf_counter()
    text, parquet = write_files(functools.partial(write_file, keys=str(keys or "")), jobs, args.workers)
    return text, parquet, time.perf_counter() - started


# ------------------------------------------------------------------------------------------------------ stages


def run_pipeline(args: argparse.Namespace, work: Path, stages: dict[str, Stage]) -> None:
    """The SDK, processor, worker and sink stages (one embedded broker)."""
    from bench_stack import fast_produce, stack_processor
    from joiner_throughput import join_once
    from processor_throughput import run_processor
    from sink_throughput import sink_run

    from preflog.deploy.broker import EmbeddedBroker
    from preflog.kafka.topics import ensure_topics
    from preflog.settings import load_settings

    events = sdk_events(args.requests, args)
    n = len(events)
    gc.freeze()  # the generated events are no work of the timed garbage collections
    master = master_from_file(work / "master.key", "master key")
    sealer = Sealer(SECRET, master, DirKeyStore(work / "sdk-keys"))
    print(f"SDK input: {n:,} events ({args.requests:,} requests), "
          f"{sum(len(r.get('prompt', '')) for _, r in events) / 1e6:.0f} MB of prompts", flush=True)  # fmt: skip
    warm_s = warm(sealer, events)
    print(f"  {sealer.keys_made} data keys made (one per subject) and {n:,} events sealed, untimed warm-up: "
          f"{warm_s:.1f} s", flush=True)  # fmt: skip
    sdk = Stage("sdk", "SDK log_* calls (validate, seal, encode, produce)", n, "events/s")
    flushed = Stage("sdk-flushed", "SDK until flushed to the broker", n, "events/s")
    inputs: dict[str, list[Captured]] = {}
    rounds = max(1, args.rounds)
    with EmbeddedBroker(work / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        conf = {"bootstrap.servers": bootstrap}
        every = [topics_of(m, r) for m in MODES for r in range(rounds)]
        ensure_topics(conf, [t for ts in every for t in ts.all().values()], 4)

        def sdk_run(mode: str, r: int) -> float:
            calls, total, sent = sdk_round(bootstrap, topics_of(mode, r), sealer if mode == "sealed" else None, events)
            flushed.seconds[mode].append(total)
            inputs.setdefault(mode, sent)
            mb = sum(len(v) for _, _, v, _ in sent) / 1e6
            print(f"  sdk {mode} round {r + 1}: calls {calls:.2f} s, flushed {total:.2f} s ({mb:.0f} MB)", flush=True)
            return calls

        alternate(rounds, sdk_run, sdk)
        if "sdk" in args.stages:
            stages["sdk"], stages["sdk-flushed"] = sdk, flushed

        data = {m: joiner_input(inputs[m]) for m in MODES}
        wall = max(ts for *_, ts in data["plain"]) + 1
        if "processor" in args.stages or "sink" in args.stages:
            proc = Stage("processor", "processor: Joiner (dict state, no Kafka)", n, "events/s")

            def join_run(mode: str, r: int) -> float:
                seconds, roles = join_once(data[mode], wall)
                print(f"  joiner {mode} round {r + 1}: {seconds:.2f} s, {dict(sorted(roles.items()))}", flush=True)
                return seconds

            alternate(rounds * 2, join_run, proc)  # a second or two a round: twice the rounds, less noise
            if "processor" in args.stages:
                stages["processor"] = proc

        if "worker" in args.stages:
            worker = Stage("worker", "processor: preflog process (RocksDB)", n, "events/s")

            def worker_run(mode: str, r: int) -> float:
                app = f"privacy-bench-{mode}-{r}"  # a group of its own: reads the round-1 topics from the start
                overrides = {
                    "kafka": {"bootstrap_servers": bootstrap},
                    "data_dir": str(work / app),
                    "topics": topics_of(mode, 0).model_dump(),
                    "processor": {**stack_processor(), "app_id": app},
                }
                first, last = run_processor(overrides, work / app, n)
                if not last:
                    raise SystemExit(f"the {mode} worker did not take its {n} events")
                print(f"  worker {mode} round {r + 1}: {n / (last - first):,.0f} events/s", flush=True)
                return last - first

            alternate(args.worker_rounds, worker_run, worker)
            stages["worker"] = worker

        if "sink" in args.stages:
            codec = SingleObjectCodec()
            rows = args.sink_rows
            settings = load_settings({
                "kafka": {"bootstrap_servers": bootstrap}, "data_dir": str(work),
                "sink": {"tables": ["pairs"], "metrics_port": 0}, "processor": {"session_timeout_s": 6},
            })  # fmt: skip
            for mode in MODES:
                pairs = joined_pairs(data[mode], wall)
                values = [
                    codec.encode("PreferencePair", {**pairs[k % len(pairs)], "pair_id": str(uuid.uuid4())})
                    for k in range(rows)
                ]
                topic = f"privacy-bench.{mode}.sink-pairs"
                ensure_topics(conf, [topic], settings.topics.partitions)
                key = [p["request_id"] for p in pairs]
                fast_produce(bootstrap, ((topic, key[k % len(key)], v) for k, v in enumerate(values)))
                print(f"  sink input {mode}: {rows:,} pair records ({len(pairs):,} joined, repeated), "
                      f"{sum(map(len, values)) / 1e6:.0f} MB", flush=True)  # fmt: skip
            sink = Stage("sink", "sink: consume, decode, write Parquet", rows, "rows/s")

            def sink_once(mode: str, r: int) -> float:
                sink_settings = settings.model_copy(update={
                    "topics": settings.topics.model_copy(update={"pairs": f"privacy-bench.{mode}.sink-pairs"}),
                    "sink": settings.sink.model_copy(update={
                        "url": f"file://{work}/audit-{mode}-{r}", "group_id": f"privacy-bench-sink-{mode}-{r}"}),
                })  # fmt: skip
                seconds = sink_run(sink_settings, rows)
                written = sum(p.stat().st_size for p in Path(f"{work}/audit-{mode}-{r}").rglob("*.parquet"))
                shutil.rmtree(f"{work}/audit-{mode}-{r}", ignore_errors=True)
                print(f"  sink {mode} round {r + 1}: {seconds:.2f} s, Parquet {gb(written)}", flush=True)
                return seconds

            alternate(rounds, sink_once, sink)
            stages["sink"] = sink


def write_logs(args: argparse.Namespace, work: Path) -> None:
    """The plain log and the sealed log of ``--rows`` pairs.

    Written first: a process pool forked after Arrow's threads ran in this process (the sink stage's) can crash.
    """
    for mode in MODES:
        keys = work / "keys" if mode == "sealed" else None
        text, parquet, took = write_log(work / f"log-{mode}", args.rows, args, keys)
        print(f"{mode} log: {args.rows:,} pairs, {gb(text)} of text, {gb(parquet)} of Parquet, "
              f"written in {took:.0f} s", flush=True)  # fmt: skip


def run_logs(args: argparse.Namespace, work: Path, stages: dict[str, Stage]) -> None:
    """The read_pairs and dataset build stages, over the logs :func:`write_logs` wrote.

    With ``--per-value``, the sealed log is read a third way: opened value by value, as the keyring did before it
    opened a column at a time (its ``open`` wrapped, so the column path does not recognise it).
    """
    keys = work / "keys"
    master = str(work / "master.key")
    modes = (*MODES, "per-value") if args.per_value else MODES

    def log(mode: str) -> str:
        return f"file://{work}/log-{'plain' if mode == 'plain' else 'sealed'}"

    def key_args(mode: str) -> tuple[str, str, str]:
        return ("", "", "") if mode == "plain" else (str(keys), master, "1" if mode == "per-value" else "")

    def measured(name: str, what: str, unit: str) -> tuple[Stage, Stage, dict[str, list[float]], dict[str, float]]:
        stage, before = (
            Stage(name, what, args.rows, unit),
            Stage(name, f"{what}, opened value by value", args.rows, unit),
        )
        before.seconds["plain"] = stage.seconds["plain"]  # the same plain runs
        return stage, before, {**stage.seconds, "per-value": before.seconds["sealed"]}, {}

    def record(stage: Stage, before: Stage, rss: dict[str, float]) -> None:
        stage.rss = {m: rss[m] for m in MODES}
        stages[stage.name] = stage
        if args.per_value:
            before.rss = {"plain": rss["plain"], "sealed": rss["per-value"]}
            stages[f"{stage.name}-per-value"] = before

    if "read" in args.stages:
        read, read_before, times, rss = measured("read", "read_pairs (sealed: Keyring loaded, fields opened)", "rows/s")

        def read_once(mode: str, r: int) -> float:
            n, took, mb, _ = child(READ_CHILD, log(mode), *key_args(mode), scratch=work)
            if n != args.rows:
                raise SystemExit(f"read_pairs of the {mode} log gave {n} rows, not {args.rows}")
            rss[mode] = max(rss.get(mode, 0.0), mb)
            print(f"  read_pairs {mode} round {r + 1}: {took:.2f} s, peak RSS {mb:,.0f} MB", flush=True)
            return took

        alternate(args.rounds, read_once, times, modes)
        record(read, read_before, rss)

    if "build" in args.stages:
        build, build_before, times, rss = measured("build", "dataset build (parquet, trl, gzip)", "rows/s")

        def build_once(mode: str, r: int) -> float:
            out = work / "datasets"
            n, took, mb, lines = child(BUILD_CHILD, log(mode), str(out), f"{mode}-{r}", *key_args(mode),
                                       scratch=work)  # fmt: skip
            shutil.rmtree(out / f"{mode}-{r}", ignore_errors=True)
            rss[mode] = max(rss.get(mode, 0.0), mb)
            build.count = build_before.count = n
            print(f"  build {mode} round {r + 1}: {n:,} rows in {took:.1f} s, peak RSS {mb:,.0f} MB; {lines[-1]}",
                  flush=True)  # fmt: skip
            return took

        alternate(args.build_rounds, build_once, times, modes)
        record(build, build_before, rss)


# ------------------------------------------------------------------------------------------------------- report


def table(stages: list[Stage]) -> str:
    """One line per stage: plain and sealed figures, their time ratio, the goal and whether it is met."""
    head = ("stage", "plain", "sealed", "sealed/plain time", f"goal <= {GOAL:.2f}x", "peak RSS plain / sealed",
            "every round, s: plain | sealed")  # fmt: skip
    rows = [head]
    for s in stages:
        rss = f"{s.rss['plain']:,.0f} / {s.rss['sealed']:,.0f} MB" if s.rss else "-"
        rows.append((
            s.what,
            f"{s.rate('plain'):,.0f} {s.unit} ({s.best('plain'):.2f} s)",
            f"{s.rate('sealed'):,.0f} {s.unit} ({s.best('sealed'):.2f} s)",
            f"{s.ratio:.2f}x",
            "met" if s.ratio <= GOAL else "MISSED",
            rss,
            " | ".join(" ".join(f"{x:.2f}" for x in s.seconds[m]) for m in MODES),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def json_rows(stages: list[Stage]) -> list[Row]:
    """Two rows a stage (seconds, plain and sealed); the sealed row's ratio is sealed over plain time."""
    out: list[Row] = []
    for s in stages:
        plain = f"{s.what}, privacy off"
        out.append(Row(group=GROUP, what=plain, figure=round(s.best("plain"), 3), unit="s", baseline=None, ratio=None,
                       target=None))  # fmt: skip
        met = "met" if s.ratio <= GOAL else "MISSED"
        out.append(Row(group=GROUP, what=f"{s.what}, privacy on", figure=round(s.best("sealed"), 3), unit="s",
                       baseline=plain, ratio=round(s.ratio, 3), target=f"<= {GOAL:.2f}x ({met})"))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests of the SDK, processor and worker stages")
    parser.add_argument("--sink-rows", type=int, default=30_000, help="pair records the sink stage writes")
    parser.add_argument("--rows", type=int, default=100_000, help="pairs of the logs read_pairs and build read")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each stage but the build (best of)")
    parser.add_argument("--build-rounds", type=int, default=1, help="rounds of the build stage (best of)")
    parser.add_argument("--worker-rounds", type=int, default=2, help="rounds of the worker stage (best of)")
    parser.add_argument(
        "--per-value", action="store_true", help="also read and build the sealed log opening it value by value"
    )
    parser.add_argument(
        "--stages", type=lambda v: set(v.split(",")), default=set(STAGES), help=f"of {','.join(STAGES)}"
    )
    parser.add_argument("--prompt-bytes", type=byte_range, default=byte_range(DEFAULT_PROMPT))
    parser.add_argument("--answer-bytes", type=byte_range, default=byte_range(DEFAULT_ANSWER))
    parser.add_argument("--workers", type=int, default=2, help="processes writing the logs")
    parser.add_argument("--dir", default=None, help="where the scratch folder goes (default: the system's temp)")
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    unknown = args.stages - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="preflog-privacy-bench-", dir=args.dir))
    started = time.perf_counter()
    stages: dict[str, Stage] = {}
    try:
        generate_master(work / "master.key")
        if args.stages & {"read", "build"}:
            write_logs(args, work)
        if args.stages & {"sdk", "processor", "worker", "sink"}:
            run_pipeline(args, work, stages)
        if args.stages & {"read", "build"}:
            run_logs(args, work, stages)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = ["sdk", "sdk-flushed", "processor", "worker", "sink", "read", "read-per-value", "build",
             "build-per-value"]  # fmt: skip
    shown = [stages[k] for k in order if k in stages]
    print(f"\nprivacy off (plain) and on (sealed), best of {args.rounds} rounds ({args.worker_rounds} for the "
          f"worker, {args.build_rounds} for the build), {time.perf_counter() - started:.0f} s in all:\n")  # fmt: skip
    print(table(shown))
    if args.json:
        write_rows(args.json, json_rows(shown))


if __name__ == "__main__":
    main()
