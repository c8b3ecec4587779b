"""Sink throughput (MB/s of record bytes, rows/s) against a bare consumer of the same pair records, in one run.

    python benchmarks/sink_throughput.py [--rows 50000] [--rounds 3] [--json PATH]

Loads PreferencePair records (generated traffic joined by the real Joiner)
into the embedded broker, then, in the same run:

* a bare confluent-kafka consumer (its own group) reads them all and only
  sums their value sizes: the baseline;
* the audit-log sink (local files) reads them with its own group, decodes,
  dedupes and writes Parquet and manifests, and commits. Once it has taken
  every record it is stopped, which writes what it holds (as at shutdown), so
  the figure has no ``idle_flush_s`` wait in it;
* ``to_table`` + ``pyarrow.parquet.write_table`` of the same rows, from dicts
  already decoded (no Kafka, no decoding): the old reference row.

Each clock starts at the first record its reader gets (not at the group join).
The generated records stay in memory for the last row; they are frozen out of
the garbage collector so its passes over them do not count against the readers.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer
from report_rows import Row, write_rows

from preflog.deploy.broker import EmbeddedBroker
from preflog.kafka.config import consumer_config
from preflog.kafka.topics import ensure_topics
from preflog.processors.join import JoinConfig, Joiner
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.registry import default_store
from preflog.settings import Settings, load_settings
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.storage import Storage
from preflog.sinks.writer import Sink

GROUP = "sink"
BARE = "bare confluent-kafka consumer"
BARE_ROWS = "bare confluent-kafka consumer, rows"
TARGET = ">= 0.5x"


def pairs(n: int) -> list[dict[str, Any]]:
    """Realistic pairs: generated traffic joined by the real Joiner."""
    codec = SingleObjectCodec()
    joiner = Joiner(JoinConfig(), codec, {}, "i", "f")
    out: list[dict[str, Any]] = []
    offset = 0
    while len(out) < n:
        for e in generate(TrafficProfile(requests=2000, invalid=0.0, seed=len(out))):
            if e.record is None:
                continue
            topic, kind = ("i", "InferenceEvent") if e.event_type == "inference" else ("f", "FeedbackEvent")
            record = inference_record(e.record) if kind == "InferenceEvent" else feedback_record(e.record)
            offset += 1
            for emit in joiner.process(topic, 0, offset, e.key.encode(), codec.encode(kind, record)):
                if emit.role == "pairs":
                    out.append({**emit.record, "pair_id": str(uuid.uuid4())})
    return out[:n]


def bare_consume(settings: Settings, rows: int) -> tuple[float, int]:
    """Seconds a bare consumer takes from its first record to its ``rows``-th, and the value bytes it read."""
    config = consumer_config(
        settings.kafka.client_config(),
        f"bench-bare-{uuid.uuid4()}",
        offset_reset="earliest",
        session_timeout_s=settings.processor.session_timeout_s,
    )
    consumer = Consumer(config)
    consumer.subscribe([settings.topics.pairs])
    count = size = 0
    started = 0.0
    try:
        while count < rows:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    continue
                if not count:
                    started = time.perf_counter()
                count += 1
                size += len(msg.value() or b"")
        return time.perf_counter() - started, size
    finally:
        consumer.close()


def sink_run(settings: Settings, rows: int) -> float:
    """Seconds the sink takes from its first record until every one of the ``rows`` records is in files."""
    sink = Sink(settings, Storage(settings.audit_url()), SingleObjectCodec())
    stop = threading.Event()
    runner = threading.Thread(target=sink.run, args=(stop,))
    runner.start()
    started = None
    writers: dict[tuple[str, int], Any] = {}  # kept: revocation at close drops them from sink.parts
    try:
        while True:
            writers.update(sink.parts)
            parts = list(writers.values())
            if started is None and any(s.batch or s.written_upto >= 0 for s in parts):
                started = time.perf_counter()
            written = sum(s.written_upto + 1 for s in parts)
            if not stop.is_set() and written + sum(len(s.batch) for s in parts) >= rows:
                stop.set()  # everything is taken: the shutdown flush writes what is held
            if written >= rows:
                return time.perf_counter() - (started or time.perf_counter())
            if not runner.is_alive():
                raise RuntimeError(f"the sink stopped with {written} of {rows} rows written")
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join()


def fmt(seconds: list[float]) -> str:
    return " ".join(f"{s:.2f}" for s in seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the rows here (benchmarks/run_all.py)")
    args = parser.parse_args()
    codec = SingleObjectCodec()
    records = pairs(args.rows)
    values = [codec.encode("PreferencePair", r) for r in records]
    input_mb = sum(map(len, values)) / 1e6
    gc.freeze()  # the generator's objects are no work of the readers' garbage collections
    work = Path(tempfile.mkdtemp(prefix="preflog-sink-bench-"))
    bare_times: list[float] = []
    sink_times: list[float] = []
    with EmbeddedBroker(work / "broker") as broker:
        settings = load_settings(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers},
                "data_dir": str(work),
                "sink": {"tables": ["pairs"], "metrics_port": 0},
                "processor": {"session_timeout_s": 6},
            }
        )
        conf = settings.kafka.client_config()
        ensure_topics(conf, [settings.topics.pairs], settings.topics.partitions)
        producer = Producer({**conf, "linger.ms": 20})
        for record, value in zip(records, values, strict=True):
            producer.produce(settings.topics.pairs, key=record["request_id"].encode(), value=value)
        producer.flush()
        for n in range(args.rounds):  # alternated, so a busy machine slows both
            bare_s, bare_bytes = bare_consume(settings, args.rows)
            bare_times.append(bare_s)
            url = f"file://{work}/audit{n}"
            sink_times.append(
                sink_run(
                    settings.model_copy(
                        update={"sink": settings.sink.model_copy(update={"url": url, "group_id": f"bench-sink-{n}"})}
                    ),
                    args.rows,
                )
            )
        files = list(Path(f"{work}/audit0").rglob("*.parquet"))
        output_mb = sum(f.stat().st_size for f in files) / 1e6
    assert bare_bytes == sum(map(len, values)), "the bare consumer read other bytes than were produced"

    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    t0 = time.perf_counter()
    pq.write_table(to_table(records, schema), work / "plain.parquet", compression="zstd")
    plain_s = time.perf_counter() - t0
    n, bare_s, sink_s = args.rows, min(bare_times), min(sink_times)
    bare_mb, sink_mb = input_mb / bare_s, input_mb / sink_s
    print(f"rows: {n}, Avro input {input_mb:.1f} MB, Parquet written {output_mb:.1f} MB in {len(files)} files")
    print(f"best of {args.rounds} rounds; seconds per round: bare {fmt(bare_times)}, sink {fmt(sink_times)}")
    print(f"{BARE + ' (reads only)':58s} {n / bare_s:9.0f} rows/s {bare_mb:7.1f} MB/s")
    print(
        f"{'preflog sink (consume, decode, dedupe, write, commit)':58s} {n / sink_s:9.0f} rows/s {sink_mb:7.1f} MB/s"
        f"   = {sink_mb / bare_mb:.2f}x the bare consumer (target {TARGET})"
    )
    print(f"{'to_table + write_table of decoded dicts (no Kafka)':58s} {n / plain_s:9.0f} rows/s")
    if args.json:
        out: list[Row] = [
            Row(group=GROUP, what=BARE, figure=round(bare_mb, 2), unit="MB/s", baseline=None, ratio=None, target=None),
            Row(
                group=GROUP,
                what="preflog sink",
                figure=round(sink_mb, 2),
                unit="MB/s",
                baseline=BARE,
                ratio=round(sink_mb / bare_mb, 3),
                target=TARGET,
            ),
            Row(
                group=GROUP,
                what=BARE_ROWS,
                figure=round(n / bare_s),
                unit="rows/s",
                baseline=None,
                ratio=None,
                target=None,
            ),
            Row(
                group=GROUP,
                what="preflog sink, rows",
                figure=round(n / sink_s),
                unit="rows/s",
                baseline=BARE_ROWS,
                ratio=round(bare_s / sink_s, 3),
                target=None,
            ),
            Row(
                group=GROUP,
                what="to_table + write_table (decoded dicts)",
                figure=round(n / plain_s),
                unit="rows/s",
                baseline=BARE_ROWS,
                ratio=round(bare_s / plain_s, 3),
                target=None,
            ),
        ]
        write_rows(args.json, out)


if __name__ == "__main__":
    main()
