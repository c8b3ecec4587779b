"""Sink throughput (rows/s, MB/s) beside a plain ``pyarrow.parquet.write_table`` of the same rows, in one run.

    python benchmarks/sink_throughput.py [--rows 50000]

Loads PreferencePair records into the embedded broker, runs the audit-log writer
(local files) until every row is written, then times write_table of the same rows.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer

from preflog.deploy.broker import EmbeddedBroker
from preflog.kafka.topics import ensure_topics
from preflog.processors.join import JoinConfig, Joiner
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.registry import default_store
from preflog.settings import load_settings
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.storage import Storage
from preflog.sinks.writer import Sink


def pairs(n: int) -> list[dict]:
    """Realistic pairs: generated traffic joined by the real Joiner."""
    codec = SingleObjectCodec()
    joiner = Joiner(JoinConfig(), codec, {}, "i", "f")
    out: list[dict] = []
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    codec = SingleObjectCodec()
    records = pairs(args.rows)
    values = [codec.encode("PreferencePair", r) for r in records]
    input_mb = sum(map(len, values)) / 1e6
    work = Path(tempfile.mkdtemp(prefix="preflog-sink-bench-"))
    with EmbeddedBroker(work / "broker") as broker:
        settings = load_settings(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers},
                "data_dir": str(work),
                "sink": {"tables": ["pairs"], "metrics_port": 0, "idle_flush_s": 1.0},
                "processor": {"session_timeout_s": 6},
            }
        )
        conf = settings.kafka.client_config()
        ensure_topics(conf, [settings.topics.pairs], settings.topics.partitions)
        producer = Producer({**conf, "linger.ms": 20})
        for record, value in zip(records, values, strict=True):
            producer.produce(settings.topics.pairs, key=record["request_id"].encode(), value=value)
        producer.flush()
        storage = Storage(settings.audit_url())
        sink = Sink(settings, storage, codec)
        stop = threading.Event()
        runner = threading.Thread(target=sink.run, args=(stop,))
        runner.start()
        started = None
        while True:
            if started is None and any(s.batch or s.written_upto >= 0 for s in sink.parts.values()):
                started = time.perf_counter()
            written = sum(s.written_upto + 1 for s in sink.parts.values())
            if written >= args.rows:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        stop.set()
        runner.join()
        files = list(Path(settings.audit_url().removeprefix("file://")).rglob("*.parquet"))
        output_mb = sum(f.stat().st_size for f in files) / 1e6

    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    t0 = time.perf_counter()
    table = to_table(records, schema)
    t1 = time.perf_counter()
    pq.write_table(table, work / "plain.parquet", compression="zstd")
    t2 = time.perf_counter()
    print(f"rows: {args.rows}, Avro input {input_mb:.1f} MB, Parquet written {output_mb:.1f} MB in {len(files)} files")
    print(
        f"{'preflog sink (consume, decode, dedupe, write, commit)':55s} {args.rows / elapsed:10.0f} rows/s "
        f"{input_mb / elapsed:6.1f} MB/s"
    )
    print(
        f"{'pyarrow write_table alone (same rows, zstd)':55s} {args.rows / (t2 - t1):10.0f} rows/s "
        f"{input_mb / (t2 - t1):6.1f} MB/s   (sink = {(t2 - t1) / elapsed:.2f} x)"
    )
    print(
        f"{'to_table + write_table (same rows)':55s} {args.rows / (t2 - t0):10.0f} rows/s "
        f"{input_mb / (t2 - t0):6.1f} MB/s   (sink = {(t2 - t0) / elapsed:.2f} x)"
    )


if __name__ == "__main__":
    main()
