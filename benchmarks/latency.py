"""End-to-end latency at half the processor's max rate: feedback sent -> pair on the topic -> pair in Parquet.

    python benchmarks/latency.py [--max-rate EVENTS_PER_S] [--duration 20] [--json PATH]

Starts the embedded broker, ``preflog process`` and ``preflog sink`` with the
stack's settings. Without ``--max-rate`` it first measures the max rate: a
burst of generated traffic sent unpaced, events/s from the first to the last
input event the processor reads (with ``--max-rate``, a small burst all the
same); the paced traffic starts once the sink has written that burst, so
neither service is still joining its group. Then it sends generated traffic paced in real
time (``producers/traffic.py``) at half that rate for ``--duration`` seconds,
noting when each feedback is sent, and measures for every pair of that traffic:

* (a) feedback sent -> its pair read from the pairs topic (a bare
  confluent-kafka consumer, records decoded with ``settings.make_codec()``);
* (b) feedback sent -> the pair's ``pair_id`` first in a Parquet file of the
  audit log (the file's manifest mtime: the sink writes it after the data).

The goals printed beside p99: (a) <= batch_wait_s + 1 s, (b) <= the sink's
idle_flush_s + 2 s. A file is cut at max_rows, max_bytes, max_age_s or when
its partition is idle_flush_s; under steady traffic no partition is idle, so
(b) shows when files are cut, not only how fast the sink writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
from bench_stack import (
    Service,
    TopicWatcher,
    broker_with_topics,
    encode_events,
    fast_produce,
    percentile,
    service_settings,
    stack_processor,
    wait_for,
)
from report_rows import Row, write_rows

from preflog.processors.pairs import pair_id
from preflog.producers import PreflogProducer
from preflog.producers.generator import GeneratedEvent, TrafficProfile, expected_outcomes, generate
from preflog.producers.traffic import send_traffic
from preflog.settings import Settings

EVENTS_IN = "preflog_processor_events_in_total"


def max_rate(bootstrap: str, settings: Settings, processor: Service, requests: int) -> float:
    """Events/s the processor reads a burst of ``requests`` generated requests at (first to last event)."""
    events = generate(
        TrafficProfile(requests=requests, invalid=0.0, rate=100, seed=3), start=datetime.now(timezone.utc)
    )
    messages = encode_events(events, settings.make_codec(), settings.topics)
    base = processor.metric(EVENTS_IN)
    sender = threading.Thread(target=fast_produce, args=(bootstrap, messages), daemon=True)
    sender.start()
    first = wait_for(lambda: processor.metric(EVENTS_IN) > base, 120, "the first calibration event")
    last = wait_for(lambda: processor.metric(EVENTS_IN) >= base + len(messages), 600, "the calibration input")
    sender.join()
    return len(messages) / max(last - first, 1e-9)


class ParquetWatcher(threading.Thread):
    """Polls the audit log's pair manifests; notes when each ``pair_id`` first appears (the manifest's mtime)."""

    def __init__(self, root: Path) -> None:
        super().__init__(name="watch-parquet", daemon=True)
        self.manifests = root / "_manifests" / "pairs"
        self.root = root
        self.first_seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self._read: set[Path] = set()

    def run(self) -> None:
        """Poll every 100 ms until :meth:`stop`."""
        while not self.stopping.wait(0.1):
            for manifest in sorted(self.manifests.glob("*/*.json")) if self.manifests.exists() else []:
                if manifest in self._read:
                    continue
                self._read.add(manifest)
                at = manifest.stat().st_mtime
                data = self.root / manifest.relative_to(self.root / "_manifests").with_suffix("")
                for pid in pq.read_table(data, columns=["pair_id"]).column("pair_id").to_pylist():
                    self.first_seen[pid] = min(at, self.first_seen.get(pid, at))

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self.stopping.set()
        self.join(10)


def paced_events(rate: float, duration: float) -> list[GeneratedEvent]:
    """Generated traffic (no invalid records, no redelivered duplicates) at about ``rate`` events/s."""
    probe = TrafficProfile(requests=1000, invalid=0.0, duplicates=0.0, seed=5)
    per_request = len(generate(probe)) / probe.requests
    requests = max(10, math.ceil(duration * rate / per_request))  # feedback keeps coming a little longer
    profile = TrafficProfile(requests=requests, rate=rate / per_request, invalid=0.0, duplicates=0.0, seed=5)
    return generate(profile, start=datetime.now(timezone.utc))


def row(what: str, figure: float, unit: str, target: str | None = None) -> Row:
    """A row of the latency group (no baseline: the goals are absolute)."""
    figure = round(figure, 3)
    return {
        "group": "latency",
        "what": what,
        "figure": figure,
        "unit": unit,
        "baseline": None,
        "ratio": None,
        "target": target,
    }


def summary(what: str, values: list[float], goal: float, rows: list[Row]) -> None:
    """Print p50/p99 of ``values`` beside the goal and add their rows."""
    p50, p99 = percentile(values, 50), percentile(values, 99)
    verdict = "meets" if p99 <= goal else "misses"
    print(f"{what:30s} p50 {p50:6.2f} s   p99 {p99:6.2f} s   goal p99 <= {goal:.2f} s ({verdict})   n={len(values)}")
    rows += [row(f"p50 {what}", p50, "s"), row(f"p99 {what}", p99, "s", f"<= {goal:g}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rate", type=float, help="events/s the processor sustains (skips the calibration)")
    parser.add_argument("--calibrate-requests", type=int, default=2000, help="requests in the calibration burst")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of paced traffic")
    parser.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a sink setting (repeatable), e.g. --sink max_age_s=10: files cut every 10 s under steady traffic",
    )
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    sink_settings = dict(item.split("=", 1) for item in args.sink)
    work = Path(tempfile.mkdtemp(prefix="preflog-latency-"))
    print(f"processor settings from preflog up (deploy/stack.py): {stack_processor()}")
    rows: list[Row] = []
    with broker_with_topics(work) as (bootstrap, topics):
        settings = service_settings(
            bootstrap, topics, work, {"state_dir": str(work / "state")}, url=f"file://{work}/audit", **sink_settings
        )
        processor = Service("process", settings, work, "processor").start()
        sink = Service("sink", settings, work, "sink").start()
        sent_at: dict[str, float] = {}
        on_topic: dict[str, tuple[str, float]] = {}  # pair_id -> (feedback_id, first seen)
        produced: dict[str, float] = {}  # pair_id -> Kafka timestamp of its first record (the processor's send)
        codec = settings.make_codec()

        def on_pair(value: bytes, seen_at: float, record_time: float) -> None:
            pair = codec.decode(value, "PreferencePair", topics.pairs)
            on_topic.setdefault(pair["pair_id"], (pair["feedback_id"], seen_at))
            produced.setdefault(pair["pair_id"], record_time)

        pairs = TopicWatcher(bootstrap, topics.pairs, topics.partitions, on_pair)
        parquet = ParquetWatcher(work / "audit")
        try:
            processor.wait_port()
            sink.wait_port()
            pairs.start()
            parquet.start()
            # the burst also warms up: the processor has joined its group before the paced traffic
            burst = max_rate(bootstrap, settings, processor, 50 if args.max_rate else args.calibrate_requests)
            rate = args.max_rate or burst
            wait_for(lambda: sink.metric("preflog_sink_rows_written_total") > 0, 120, "the sink's first file", 0.2)
            print(f"max rate: {rate:.0f} events/s{' (given)' if args.max_rate else ' (unpaced burst)'}")
            events = paced_events(rate / 2, args.duration)

            sends: list[float] = []

            def sent(event: GeneratedEvent) -> None:
                sends.append(time.time())
                if event.event_type == "feedback" and event.record is not None:
                    sent_at.setdefault(event.record["feedback_id"], sends[-1])

            with PreflogProducer(settings.kafka.client_config(), codec, topics) as log:
                send_traffic(events, log, pace=True, on_event=sent)
            steady = sum(1 for t in sends if t - sends[0] <= args.duration) / args.duration
            tail = sends[-1] - sends[0] - args.duration
            print(f"paced: {steady:.0f} events/s for {args.duration:g} s (target {rate / 2:.0f}), {len(sends)} events")
            print(f"       (the last feedback of those requests followed over {tail:.1f} s more)")
            expected = {pair_id(f, c, r) for f, c, r in expected_outcomes(events).pairs}
            idle = settings.sink.idle_flush_s
            with contextlib.suppress(TimeoutError):  # what is missing is reported below
                wait_for(lambda: expected <= on_topic.keys(), 60, "the pairs on the topic", every=0.2)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: expected <= parquet.first_seen.keys(), settings.sink.max_age_s + 30, "the Parquet")
        finally:
            parquet.stop()
            pairs.stop()
            processor.stop()
            sink.stop()
    topic_lat = [on_topic[p][1] - sent_at[on_topic[p][0]] for p in expected if p in on_topic]
    file_lat = [
        parquet.first_seen[p] - sent_at[on_topic[p][0]] for p in expected if p in on_topic and p in parquet.first_seen
    ]
    print(f"pairs expected {len(expected)}, on the topic {len(topic_lat)}, in Parquet {len(file_lat)}")
    print(f"sink: idle_flush_s {idle:g}, max_age_s {settings.sink.max_age_s:g}, max_rows {settings.sink.max_rows}")
    rows += [row("max rate (burst)", rate, "events/s"), row("paced rate", steady, "events/s")]
    made = [produced[p] - sent_at[on_topic[p][0]] for p in expected if p in produced]
    print(f"(of (a): feedback sent -> pair record's timestamp, the processor's send: p50 {percentile(made, 50):.2f} s)")
    summary("feedback sent -> pairs topic", topic_lat, settings.processor.batch_wait_s + 1.0, rows)
    summary("feedback sent -> Parquet", file_lat, idle + 2.0, rows)
    if args.sink:  # the rows say which sink settings they were measured with
        rows = [Row(**{**r, "what": f"{r['what']} (sink {', '.join(args.sink)})"}) for r in rows]
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
