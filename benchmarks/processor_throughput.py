"""Processor throughput (events/s) beside a bare Faust agent that only counts, in the same run.

    python benchmarks/processor_throughput.py [--requests 10000] [--json rows.json]

Starts the embedded broker, loads generated traffic (no invalid records), then
runs each consumer over the same input and reports events/s measured from its
first to its last input event (start-up and group join excluded). The
baseline is a bare Faust agent that takes the same batches and only counts.
The processor runs with the embedded stack's settings (RocksDB, default
produce batching), with the memory store, and with the single-record produce
batches the embedded stack used before its recovery read to the fetched end.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from report_rows import Row, write_rows

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.kafka.topics import ensure_topics
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.settings import TopicSettings, load_settings, settings_env

HERE = Path(__file__).parent


def metric(port: int, name: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(name))


def run_processor(settings_overrides: dict, work: Path, expected: int) -> tuple[float, float]:
    port = free_port()
    settings = load_settings(
        {
            **settings_overrides,
            "processor": {
                **settings_overrides.get("processor", {}),
                "metrics_port": port,
                "state_dir": str(work / "state"),
            },
        }
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")} | settings_env(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflog", "process"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = last = 0.0
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = metric(port, "preflog_processor_events_in_total")
            if n > 0 and not first:
                first = time.time()
            if n >= expected:
                last = time.time()
                break
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures here (benchmarks/run_all.py reads them)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="preflog-bench-"))
    with EmbeddedBroker(work / "broker") as broker:
        topics = TopicSettings()
        conf = {"bootstrap.servers": broker.bootstrap_servers}
        ensure_topics(conf, topics.all().values(), topics.partitions)
        events = generate(
            TrafficProfile(requests=args.requests, invalid=0.0, rate=100),
            start=datetime(2026, 11, 1, tzinfo=timezone.utc),
        )
        started = time.perf_counter()
        with PreflogProducer({**conf, "linger.ms": 20}, load_settings().make_codec(), topics) as log:
            sent = send_traffic(events, log, pace=False)
        n = sent["inference"] + sent["feedback"]
        print(
            f"input: {n} events ({sent['inference']} inference, {sent['feedback']} feedback), "
            f"produced through the SDK in {time.perf_counter() - started:.2f} s"
        )

        result = work / "bare.txt"
        counter = [
            sys.executable,
            str(HERE / "bare_counter.py"),
            broker.bootstrap_servers,
            f"{topics.inference},{topics.feedback}",
            str(n),
            str(result),
        ]
        subprocess.run(counter, capture_output=True, timeout=600, cwd=work)
        out = result.read_text() if result.exists() else ""
        m = re.search(r"first=([\d.]+) last=([\d.]+)", out)
        assert m, out
        bare = n / (float(m[2]) - float(m[1]))

        overrides = {"kafka": {"bootstrap_servers": broker.bootstrap_servers}, "data_dir": str(work)}
        results = {}
        configs: list[tuple[str, dict[str, Any]]] = [
            ("processor, RocksDB (stack settings)", {"store": "rocksdb://", "app_id": "preflog-bench-rocksdb"}),
            ("processor, memory store", {"store": "memory://", "app_id": "preflog-bench-memory"}),
            (
                "processor, RocksDB, 1-record batches",
                {"store": "rocksdb://", "producer_max_batch_size": 1, "app_id": "preflog-bench-single"},
            ),
        ]
        for label, processor in configs:
            settings = {"session_timeout_s": 6, "recovery_consistency_check": False, **processor}
            first, last = run_processor({**overrides, "processor": settings}, work / processor["app_id"], n)
            results[label] = n / (last - first) if last else float("nan")

    base = "bare Faust agent (take_events, count only)"
    print(f"{base:42s} {bare:10.0f} events/s")
    rows = [Row(group="processor", what=base, figure=round(bare), unit="events/s", baseline=None, ratio=None,
                target=None)]  # fmt: skip
    for label, rate in results.items():
        print(f"{label:42s} {rate:10.0f} events/s   ({rate / bare:.2f} x bare)")
        target = ">= 0.6x" if "1-record" not in label else None
        rows.append(Row(group="processor", what=label, figure=round(rate), unit="events/s", baseline=base,
                        ratio=round(rate / bare, 3), target=target))  # fmt: skip
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
