"""Replay throughput (events/s) beside a bare consumer that only reads the same records, in the same run.

    python benchmarks/replay_throughput.py [--requests 10000] [--json PATH]

Starts the embedded broker, loads generated traffic (default noise: duplicates,
orphans, invalid records), then times:

* bare: a confluent-kafka consumer reading every input record once;
* replay, dry of output (``storage=None``): read, merge, join, encode;
* replay to files: the same plus Parquet and manifests on the local disk.

With ``--json PATH`` it also writes the figures as rows of group ``replay``
(``benchmarks/report_rows.py``), each replay row as a ratio to the bare consumer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from report_rows import Row, write_rows

from preflog.deploy.broker import EmbeddedBroker
from preflog.kafka.topics import ensure_topics
from preflog.processors.ranges import plan
from preflog.processors.replay import Replay
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.settings import Settings, load_settings
from preflog.sinks.storage import Storage

GROUP, BARE, TARGET = "replay", "bare consumer", ">= 0.5x"


def bare_read(settings: Settings, ranges: list, total: int) -> float:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "bench-bare", "enable.auto.commit": False})
    consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges])
    n, started = 0, time.perf_counter()
    while n < total:
        n += sum(1 for m in consumer.consume(1000, 0.5) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", metavar="PATH", help="also write the rows here (benchmarks/run_all.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(Path(tmp) / "broker") as broker:
        settings = load_settings({"kafka": {"bootstrap_servers": broker.bootstrap_servers}, "data_dir": tmp})
        t = settings.topics
        ensure_topics(settings.kafka.client_config(), t.all().values(), t.partitions)
        events = generate(
            TrafficProfile(requests=args.requests, rate=200), start=datetime(2026, 11, 1, tzinfo=timezone.utc)
        )
        with PreflogProducer.from_settings(settings) as producer:
            sent = send_traffic(events, producer, pace=False)
        topics = {"inference": t.inference, "feedback": t.feedback}
        ranges = plan(settings.kafka.client_config(), topics)
        total = sum(r.planned for r in ranges)
        print(f"{sum(sent.values())} events sent, {total} in the plan ({t.partitions} partitions)")
        bare = bare_read(settings, ranges, total)
        print(f"bare consumer read:        {total / bare:>9,.0f} events/s ({bare:.2f} s)")
        rows = [
            Row(
                group=GROUP,
                what=BARE,
                figure=round(total / bare),
                unit="events/s",
                baseline=None,
                ratio=None,
                target=None,
            )
        ]
        for label, storage in (
            ("replay, no output:", None),
            ("replay to Parquet files:", Storage(f"file://{tmp}/replay")),
        ):
            started = time.perf_counter()
            summary = Replay(settings, ranges, storage, f"bench-{label[:6]}").run()
            elapsed = time.perf_counter() - started
            ratio = bare / elapsed
            print(
                f"{label:<26} {total / elapsed:>9,.0f} events/s ({elapsed:.2f} s, {ratio:.2f}x bare); "
                f"{summary.written['pairs']} pairs, {summary.files} files"
            )
            what = label.rstrip(":")
            rows.append(
                Row(
                    group=GROUP,
                    what=what,
                    figure=round(total / elapsed),
                    unit="events/s",
                    baseline=BARE,
                    ratio=round(ratio, 3),
                    target=TARGET,
                )
            )
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
