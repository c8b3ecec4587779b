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
import shutil
import signal
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


def profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling process ``pid`` until it is interrupted (a raw, collapsed-stack profile in ``out``)."""
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_processor(
    settings_overrides: dict, work: Path, expected: int, profile: Path | None = None
) -> tuple[float, float]:
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
    spy = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = metric(port, "preflog_processor_events_in_total")
            if n > 0 and not first:
                first = time.time()
                spy = profiler(proc.pid, profile) if profile else None
            if n >= expected:
                last = time.time()
                break
            time.sleep(0.25)  # a scrape costs the worker CPU (py-spy: ~10% of its samples at 0.05 s)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(30)
        proc.terminate()
        proc.wait(30)
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a processor setting for every run (repeatable), e.g. --set batch_wait_s=0.1",
    )
    parser.add_argument("--only", help="run only the processor rows whose label contains this")
    parser.add_argument("--profile", metavar="DIR", help="py-spy profiles of each processor run (raw) go here")
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
        extra = dict(item.split("=", 1) for item in args.set)
        for label, processor in configs:
            if args.only and args.only not in label:
                continue
            settings = {"session_timeout_s": 6, "recovery_consistency_check": False, **extra, **processor}
            profile = None
            if args.profile and shutil.which("py-spy"):
                profile = Path(args.profile) / f"{processor['app_id']}.txt"
                profile.parent.mkdir(parents=True, exist_ok=True)
            first, last = run_processor({**overrides, "processor": settings}, work / processor["app_id"], n, profile)
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
