"""Replay throughput (events/s) beside a bare consumer that only reads the same records, in the same run.

    python benchmarks/replay_throughput.py [--requests 10000] [--json PATH]

Starts the embedded broker, loads generated traffic (default noise: duplicates,
orphans, invalid records), then times:

* bare: a confluent-kafka consumer reading every input record once (the
  baseline), and the same consumer as issue 11 timed it: asking for 1,000
  records per call, so that its last call waits out the 0.5 s timeout (most
  of that figure's time; shown for comparison with the issue);
* replay, dry of output (``storage=None``): read, merge, join, encode;
* replay to files: the same plus Parquet and manifests on the local disk.

With ``--json PATH`` it also writes the figures as rows of group ``replay``
(``benchmarks/report_rows.py``), each as a ratio to the bare consumer. The
process's CPU seconds are printed beside each replay: on a loaded machine
wall-clock figures move with the load, CPU much less.
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
ISSUE_BARE = "bare consumer as issue 11 timed it"  # consume(1000, 0.5) to the end: its last call waits 0.5 s


def bare_read(settings: Settings, ranges: list, total: int, issue_batches: bool = False) -> float:
    """Seconds a consumer takes to read the ``total`` records of ``ranges`` once.

    It asks each ``consume`` for at most what remains; ``issue_batches`` asks for 1,000 every time, as the
    figures of issue 11 did, so that the last call waits out its 0.5 s timeout for records that never come.
    """
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "bench-bare", "enable.auto.commit": False})
    consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges])
    n, started = 0, time.perf_counter()
    while n < total:
        want = 1000 if issue_batches else min(1000, total - n)
        n += sum(1 for m in consumer.consume(want, 0.5) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def row(what: str, total: int, seconds: float, bare: float | None) -> Row:
    """A figure in events/s; with ``bare`` (the bare consumer's seconds) a ratio to it and the target."""
    ratio = None if bare is None else round(bare / seconds, 3)
    return Row(
        group=GROUP,
        what=what,
        figure=round(total / seconds),
        unit="events/s",
        baseline=None if bare is None else BARE,
        ratio=ratio,
        target=None if bare is None or what.startswith(BARE) else TARGET,
    )


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
        bare, issue = bare_read(settings, ranges, total), bare_read(settings, ranges, total, issue_batches=True)
        print(f"{BARE + ':':<26} {total / bare:>9,.0f} events/s ({bare:.2f} s)")
        print(f"{ISSUE_BARE + ':':<26} {total / issue:>9,.0f} events/s ({issue:.2f} s, {bare / issue:.2f}x bare)")
        rows = [row(BARE, total, bare, None), row(ISSUE_BARE, total, issue, bare)]
        for label, storage in (
            ("replay, no output", None),
            ("replay to Parquet files", Storage(f"file://{tmp}/replay")),
        ):
            started, cpu = time.perf_counter(), time.process_time()
            summary = Replay(settings, ranges, storage, f"bench-{label[:6]}").run()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(
                f"{label + ':':<26} {total / elapsed:>9,.0f} events/s ({elapsed:.2f} s, {cpu:.2f} s CPU; "
                f"{bare / elapsed:.3f}x bare, {issue / elapsed:.2f}x as issue 11 timed it); "
                f"{summary.written['pairs']} pairs, {summary.files} files"
            )
            rows.append(row(label, total, elapsed, bare))
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
