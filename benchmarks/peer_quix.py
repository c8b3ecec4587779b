"""Quix Streams' interval join beside preflog's processor, on the same records in the same run (events/s).

    python benchmarks/peer_quix.py [--requests 8000] [--rounds 3] [--json PATH]

Needs Quix Streams, for this benchmark only: :data:`INSTALL` (its caps, confluent-kafka < 2.13 and pydantic < 2.14,
are below preflog's pins, so pip refuses it as an extra; it runs with the pinned ones). Produces the traffic of
processor_throughput.py (production-size text, no invalid records) to the embedded broker once, then runs, alternating
for ``--rounds`` rounds, each consumer of those records in a process of its own: preflog's processor (RocksDB, the
stack's settings, as processor_throughput.py runs it); a bare Quix Streams application that only counts the raw
records (the baseline); and Quix Streams ``join_interval`` of feedback (left) to inference (right) on the key
(request_id), values decoded by preflog's ``SingleObjectCodec`` in a Quix deserializer, joined pairs written as
JSON to a topic. The Quix applications wait at most preflog's batch wait (10 ms) for a batch of records
(``consumer_poll_timeout``); the join runs once more with Quix's default, 1 s, which a finite input pays at
each batch that does not fill (Quix asks librdkafka for 10,000 records at a time).

Each is timed from its first input record to its last expected output in Kafka (preflog: the acknowledged pairs
and unpaired signals its metrics count; the join: its output records, read back by this process; the bare
counter: its last record). Each count is checked against what the input implies, computed here without either
system: a round that lost or added a record is shown INVALID, gives no figure, and makes the exit status 1.
Figures are the best of the valid rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from processor_throughput import metric
from report_rows import Row, write_rows

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.deploy.lifeline import parent_death_preexec, watch_parent
from preflog.kafka.topics import ensure_topics
from preflog.producers import PreflogProducer
from preflog.producers.generator import GeneratedEvent, TrafficProfile, expected_outcomes, generate
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import ProcessorSettings, TopicSettings, load_settings, settings_env

INSTALL = "pip install --no-deps quixstreams==3.28.0 jsonlines==4.0.0 orjson==3.13.0"
GROUP = "peer-quix"
STALL_S, START_S = 30.0, 180.0  # no progress for this long once records flow, or before the first: records lost
BATCH_WAIT_S = ProcessorSettings().batch_wait_s
#: key -> (label, Quix's consumer_poll_timeout, the row its ratio is against)
RUNS: dict[str, tuple[str, float, str | None]] = {
    "bare": ("Quix Streams bare consumer (count only)", BATCH_WAIT_S, None),
    "join": ("Quix Streams join_interval (decode, join, JSON out)", BATCH_WAIT_S, "bare"),
    "join-1s": ("Quix Streams join_interval, Quix's 1 s poll timeout", 1.0, "bare"),
    "preflog": ("preflog processor (RocksDB, stack settings)", 0.0, "join"),
}
PREFLOG_METRICS = {  # what the processor counts -> its Prometheus sample
    "in": "preflog_processor_events_in_total",
    "pairs": "preflog_processor_pairs_out_total",
    "unpaired": "preflog_processor_unpaired_out_total",
    "duplicates": "preflog_processor_duplicates_ignored_total",
    "no_pairs": 'preflog_processor_unmatched_total{reason="NO_PAIRS"}',
    "dead_letters": "preflog_processor_dead_letters_total",
}
LEGEND = """per record:
  preflog processor      strict Avro decode and validation (candidate indices), dedupe of redelivered feedback,
                         event-time windows (1 h + 5 min grace) with late/unmatched routing (NO_FEEDBACK,
                         NO_INFERENCE, NO_PAIRS) and dead letters, pairs built per feedback kind, state in
                         RocksDB with its changelog; outputs acknowledged before offsets are committed
  Quix join_interval     preflog's codec decode, then RocksDB interval join (state + changelog) on Kafka
                         timestamps, one merged JSON record per match: no validation, no dedupe (a redelivered
                         feedback joins twice), nothing for unmatched records, no dead letters; at-least-once
  Quix bare              raw bytes counted, nothing decoded or stored (the baseline)"""


def quix_child(mode: str, poll: str, bootstrap: str, inference: str, feedback: str, output: str, n: str) -> None:
    """In a child process: run one Quix Streams application over the input, then print its counts as JSON."""
    import orjson
    from quixstreams import Application
    from quixstreams.dataframe import StreamingDataFrame
    from quixstreams.models import Deserializer, DeserializerType, JSONSerializer, SerializationContext
    from quixstreams.state.rocksdb import RocksDBOptions

    watch_parent(os.getppid())
    config = ProcessorSettings()
    codec, expected = SingleObjectCodec(), int(n)
    seen = {"in": 0, "out": 0, "first": 0.0, "last": 0.0}

    class Decode(Deserializer):
        def __init__(self, record_type: str) -> None:
            super().__init__()
            self.record_type = record_type

        def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
            return codec.decode(value, self.record_type, ctx.topic)

    # a 6 s session: Tansu's group join waits half of it (shared/notes/broker.md); decoded values hold datetimes,
    # which Quix's own JSON dumps refuses in its state store (orjson's default handles them)
    app = Application(bootstrap, consumer_group=f"{GROUP}-{mode}-{os.getpid()}", auto_offset_reset="earliest",
                      state_dir="state", loglevel="WARNING", consumer_poll_timeout=float(poll),
                      consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
                      rocksdb_options=RocksDBOptions(dumps=orjson.dumps, loads=orjson.loads))  # fmt: skip

    def count_in(_: Any) -> None:
        if not seen["in"]:
            seen["first"] = time.time()
        seen["in"] += 1
        if mode == "bare" and seen["in"] == expected:
            seen["last"] = time.time()
            app.stop()

    def count_out(_: Any) -> None:
        seen["out"] += 1

    def frame(topic: str, value: DeserializerType) -> StreamingDataFrame:
        return app.dataframe(app.topic(topic, key_deserializer="bytes", value_deserializer=value)).update(count_in)

    if mode == "bare":
        for topic in (inference, feedback):
            frame(topic, "bytes")
    else:
        joined = frame(feedback, Decode("FeedbackEvent")).join_interval(
            frame(inference, Decode("InferenceEvent")),
            on_merge=lambda fb, inf: {"feedback": fb, "inference": inf},
            backward_ms=int(config.window_s * 1000),  # an inference up to the window before its feedback
            forward_ms=int(config.grace_s * 1000),  # and a feedback produced up to the grace before its inference
            grace_ms=int((config.window_s + config.grace_s) * 1000),
        )
        sink = app.topic(output, key_serializer="bytes", value_serializer=JSONSerializer(dumps=orjson.dumps))
        joined.update(count_out).to_topic(sink)
    try:
        app.run()
    finally:
        print(f"\nRESULT {json.dumps(seen)}", flush=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child: SIGTERM, then SIGKILL if it has not ended within 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_quix(key: str, bootstrap: str, topics: TopicSettings, output: str, n: int, expected: int, work: Path) -> dict:
    """One Quix application (in ``work``); its first and last times and counts (the join's output read back)."""
    mode, poll, log = key.split("-")[0], RUNS[key][1], work / "child.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(poll), bootstrap, topics.inference]
    work.mkdir(parents=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, topics.feedback, output, str(n)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=work, preexec_fn=parent_death_preexec(signal.SIGTERM))  # fmt: skip
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{GROUP}-watch", "fetch.wait.max.ms": 50})
    read, last = 0, 0.0
    try:
        watcher.assign([TopicPartition(output, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
        progressed = time.time()
        while proc.poll() is None:  # the join's output, from the start of every partition (no group, no offsets)
            got = [m for m in watcher.consume(500, 0.05) if m.error() is None]
            now = time.time()
            if got:
                read, progressed = read + len(got), now
            if mode == "join" and read >= expected and not last:
                last = now
            if (last and now - last > 1.0) or now - progressed > (STALL_S if read else START_S):
                break  # one more second after the last expected output, for records beyond it
    finally:
        stop(proc)
        watcher.close()
    lines = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")]
    result = json.loads(lines[-1][7:]) if lines else {"in": 0, "out": 0, "first": 0.0, "last": 0.0}
    return result | ({"last": last, "read": read} if mode == "join" else {})


def run_preflog(bootstrap: str, work: Path, app_id: str, want: dict[str, int]) -> tuple[float, float, dict]:
    """preflog's processor as processor_throughput.py runs it, timed to its last expected acknowledged output."""
    port = free_port()
    processor = {"session_timeout_s": 6, "recovery_consistency_check": False, "store": "rocksdb://",
                 "app_id": app_id, "metrics_port": port, "state_dir": str(work / app_id / "state")}  # fmt: skip
    settings = load_settings({"kafka": {"bootstrap_servers": bootstrap}, "data_dir": str(work), "processor": processor})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")} | settings_env(settings)
    with (work / f"{app_id}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "preflog", "process"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=parent_death_preexec(signal.SIGTERM))  # fmt: skip
    first = last = 0.0
    got = dict.fromkeys(PREFLOG_METRICS, 0.0)
    try:
        progressed = time.time()
        while proc.poll() is None:
            now, before = time.time(), got
            got = {k: metric(port, name) for k, name in PREFLOG_METRICS.items()}
            first = first or (now if got["in"] else 0.0)
            progressed = now if got != before else progressed
            if all(got[k] >= v for k, v in want.items()):
                last = now
                time.sleep(1.0)  # then read again: outputs beyond the expected ones would show
                got = {k: metric(port, name) for k, name in PREFLOG_METRICS.items()}
                break
            if now - progressed > (STALL_S if first else START_S):
                break
            time.sleep(0.25)  # as processor_throughput.py: a scrape costs the worker CPU
    finally:
        stop(proc)
    return first, last, got


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return quix_child(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here (benchmarks/run_all.py reads them)")
    args = parser.parse_args()
    if importlib.util.find_spec("quixstreams") is None:
        sys.exit(f"peer_quix.py needs Quix Streams, for this benchmark only: {INSTALL}")
    work = Path(tempfile.mkdtemp(prefix="preflog-peer-quix-"))
    events: list[GeneratedEvent] = generate(
        TrafficProfile(requests=args.requests, invalid=0.0, rate=100), start=datetime(2026, 11, 1, tzinfo=timezone.utc)
    )  # processor_throughput.py's input
    truth = expected_outcomes(events)  # what the input implies, computed without either system
    inferences = {e.key for e in events if e.event_type == "inference"}
    n = len(events)
    joins = sum(1 for e in events if e.event_type == "feedback" and e.key in inferences)
    want = {"in": n, "pairs": len(truth.pairs), "unpaired": len(truth.signals), "duplicates": truth.duplicates,
            "no_pairs": len(truth.unmatched.get("NO_PAIRS", ())), "dead_letters": 0}  # fmt: skip
    rates: dict[str, list[float]] = {key: [] for key in ("preflog", "bare", "join", "join-1s")}
    invalid: list[str] = []
    with EmbeddedBroker(work / "broker") as broker:
        topics, bootstrap = TopicSettings(), broker.bootstrap_servers
        outputs = {(k, r): f"{GROUP}.{k}.r{r}" for k in ("bare", "join", "join-1s") for r in range(args.rounds)}
        # Kafka's default retention, explicit: Tansu's DescribeConfigs returns only the configs a topic was created
        # with, and Quix derives its changelogs' retention from the input topics' "retention.ms" (KeyError without)
        ensure_topics({"bootstrap.servers": bootstrap}, [*topics.all().values(), *outputs.values()],
                      topics.partitions, config={"retention.ms": "604800000"})  # fmt: skip
        started = time.perf_counter()
        with PreflogProducer({"bootstrap.servers": bootstrap, "linger.ms": 20}, SingleObjectCodec(), topics) as log:
            sent = send_traffic(events, log, pace=False)
        print(f"input: {n} events ({sent['inference']} inference, {sent['feedback']} feedback), produced in "
              f"{time.perf_counter() - started:.2f} s; expected: preflog {want['pairs']} pairs + {want['unpaired']} "
              f"unpaired ({want['duplicates']} redelivered feedback ignored), Quix join {joins} records")  # fmt: skip
        for r in range(args.rounds):
            first, last, got = run_preflog(bootstrap, work, f"{GROUP}-preflog-r{r}", want)
            counts = {k: int(v) for k, v in got.items()}
            ok = bool(last) and counts == want
            rates["preflog"].append(n / (last - first) if ok else 0.0)
            invalid += [] if ok else [f"round {r + 1} preflog: got {counts}, expected {want}"]
            for key, expected in (("bare", 0), ("join", joins), ("join-1s", joins)):
                res = run_quix(key, bootstrap, topics, outputs[key, r], n, expected, work / f"{key}-r{r}")
                ok = res["in"] == n and res["last"] > 0 and res["out"] == res.get("read", 0) == expected
                rates[key].append(n / (res["last"] - res["first"]) if ok else 0.0)
                invalid += [] if ok else [f"round {r + 1} {key}: got {res}, expected {n} in, {expected} out"]
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" if v[-1] else f"{k} INVALID"
                                                 for k, v in rates.items()), flush=True)  # fmt: skip
    if invalid:
        print(f"the runs' logs are kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    report(rates, invalid, n, args.rounds, args.json)


def report(rates: dict[str, list[float]], invalid: list[str], n: int, rounds: int, json_path: str | None) -> None:
    """Print the table and legend (best of the valid rounds) and write the rows; exit 1 if any round was invalid."""
    best = {k: max(v) for k, v in rates.items() if max(v, default=0.0) > 0}
    print(f"\n{n} input events, best of {rounds} round(s), first input record to last expected output")
    print(f"{'':54s} {'events/s':>10s} {'x bare Quix':>12s} {'x Quix join':>12s}")
    rows: list[Row] = []
    for key, (label, _, baseline) in RUNS.items():
        if key not in best:
            print(f"{label:54s} {'INVALID':>10s}")
            continue
        rate, bare, join = best[key], best.get("bare"), best.get("join")
        x_join = f"{rate / join:.2f}x" if join and key == "preflog" else ""
        print(f"{label:54s} {rate:10,.0f} {f'{rate / bare:.2f}x' if bare else '':>12s} {x_join:>12s}")
        base = best.get(baseline or "")
        rows.append(Row(group=GROUP, what=label, figure=round(rate), unit="events/s",
                        baseline=RUNS[baseline][0] if base and baseline else None,
                        ratio=round(rate / base, 3) if base else None, target=None))  # fmt: skip
    print("\n" + LEGEND)
    for line in invalid:
        print(f"INVALID {line}", file=sys.stderr)
    if json_path:
        write_rows(json_path, rows)
    if invalid:
        sys.exit(1)


if __name__ == "__main__":
    main()
