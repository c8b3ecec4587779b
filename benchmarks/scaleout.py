"""Processor scale-out: 1, 2 and 4 workers of one app over 8 partitions, the same input.

    python benchmarks/scaleout.py [--requests 3000] [--workers 1,2,4] [--json PATH]

For each worker count: a fresh embedded broker with every topic at 8
partitions; the workers (same app id, each its own state directory and
metrics port, the stack's processor settings, RocksDB store) start and join
the group; small warm-up rounds are sent until every worker has read some
(so each holds partitions before the clock starts); then the generated input
is sent with a fast producer and events/s is measured from the first to the
last input event read across all workers (the sum of
``preflog_processor_events_in_total``). The curve is reported with its ratio
to one worker; on a 2-core machine it bends past 2 workers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_stack import (
    Message,
    Service,
    broker_with_topics,
    encode_events,
    fast_produce,
    service_settings,
    stack_processor,
    wait_for,
)
from report_rows import Row, write_rows

from preflog.producers.generator import TrafficProfile, expected_outcomes, generate
from preflog.settings import TopicSettings, load_settings

EVENTS_IN = "preflog_processor_events_in_total"
PAIRS_OUT = "preflog_processor_pairs_out_total"
PARTITIONS = 8
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def total(workers: list[Service], name: str) -> float:
    """Sum of a metric over the workers."""
    return sum(w.metric(name) for w in workers)


def caught_up(workers: list[Service], events: int, pairs: int) -> bool:
    """Whether the workers have read ``events`` input events and emitted ``pairs`` pairs between them."""
    return total(workers, EVENTS_IN) >= events and total(workers, PAIRS_OUT) >= pairs


def warm_up(bootstrap: str, topics: TopicSettings, workers: list[Service], timeout: float = 180.0) -> int:
    """Send warm-up rounds until every worker has read input and all of it is joined; returns the events sent."""
    codec = load_settings().make_codec()
    sent = pairs = 0
    deadline = time.monotonic() + timeout
    for seed in range(100, 1000):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every worker got partitions in {timeout:.0f} s")
        events = generate(TrafficProfile(requests=100, invalid=0.0, rate=100, seed=seed), start=START)
        sent += fast_produce(bootstrap, encode_events(events, codec, topics))
        pairs += len(expected_outcomes(events).pairs)
        read_all = functools.partial(caught_up, workers, sent, pairs)
        wait_for(read_all, timeout, "the warm-up input to be read and joined", every=0.2)
        if all(w.metric(EVENTS_IN) > 0 for w in workers):
            return sent
        time.sleep(1.0)
    raise AssertionError("unreachable")


def run(work: Path, count: int, messages: list[Message], expected: int) -> tuple[float, float]:
    """Events/s of ``count`` workers over ``messages``, and the pairs they emitted."""
    with broker_with_topics(work, PARTITIONS) as (bootstrap, topics):
        workers = []
        try:
            for i in range(count):
                settings = service_settings(
                    bootstrap,
                    topics,
                    work,
                    {"app_id": "preflog-bench-scaleout", "state_dir": str(work / f"state-{i}"), "store": "rocksdb://"},
                )
                workers.append(Service("process", settings, work, f"processor-{i}").start())
            for w in workers:
                w.wait_port()
            base = warm_up(bootstrap, topics, workers)
            pairs_before = total(workers, PAIRS_OUT)
            n = len(messages)
            sender = threading.Thread(target=fast_produce, args=(bootstrap, messages), daemon=True)
            sender.start()
            first = wait_for(lambda: total(workers, EVENTS_IN) > base, 120, "the first input event", every=0.1)
            cpu = sum(w.cpu_s() for w in workers)
            last = wait_for(lambda: total(workers, EVENTS_IN) >= base + n, 900, "the last input event", every=0.1)
            cpu = sum(w.cpu_s() for w in workers) - cpu
            print(f"  {count} worker(s) used {cpu / (last - first):.2f} cores between the first and last event")
            sender.join()
            with contextlib.suppress(TimeoutError):  # the last batch's outputs (fewer is reported, not raised)
                wait_for(lambda: total(workers, PAIRS_OUT) >= pairs_before + expected, 30, "the pairs", every=0.2)
            time.sleep(0.5)
            return n / max(last - first, 1e-9), total(workers, PAIRS_OUT) - pairs_before
        finally:
            for w in workers:
                w.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="generated requests (about 2 events each)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="preflog-scaleout-"))
    events = generate(TrafficProfile(requests=args.requests, invalid=0.0, rate=100), start=START)
    messages = encode_events(events, load_settings().make_codec(), TopicSettings(partitions=PARTITIONS))
    expected = len(expected_outcomes(events).pairs)
    print(f"input: {len(messages)} events over {PARTITIONS} partitions; os.cpu_count() = {os.cpu_count()}")
    print(f"processor settings from preflog up (deploy/stack.py): {stack_processor()}")
    rates: dict[int, float] = {}
    for count in counts:
        rates[count], pairs = run(work / f"workers-{count}", count, messages, expected)
        note = "" if pairs == expected else "  (more: re-emitted after a rebalance)" if pairs > expected else " (FEWER)"
        print(f"{count} worker(s): {rates[count]:8.0f} events/s   pairs out {pairs:.0f} of {expected}{note}")
    one = rates.get(1)
    rows: list[Row] = []
    print(f"\n{'workers':>8} {'events/s':>10} {'x 1 worker':>11}")
    for count, rate in rates.items():
        ratio = rate / one if one else None
        print(f"{count:>8} {rate:>10.0f} {ratio if ratio is not None else float('nan'):>11.2f}")
        rows.append(
            {
                "group": "scale-out",
                "what": f"{count} worker{'s' if count > 1 else ''}, {PARTITIONS} partitions",
                "figure": round(rate, 1),
                "unit": "events/s",
                "baseline": "1 worker, 8 partitions" if one and count != 1 else None,
                "ratio": round(ratio, 3) if ratio is not None and count != 1 else None,
                "target": None,
            }
        )
    cores = os.cpu_count() or 1
    if any(c > cores for c in counts):
        print(f"note: {cores} cores here, so the curve bends past {cores} workers (they share the CPUs)")
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
