"""Does a quiet processor run (no crash, no restart) write any pair twice to the pairs topic?

    python benchmarks/reemit_check.py [--requests 8000] [--runs 3] [--same-broker] [--set FIELD=VALUE ...]

Per run: generated traffic (no invalid records) on an embedded broker, one ``preflog process`` subprocess
(processor_throughput.py's settings, its log in a file) run until its input counter reaches the number sent
and its pair counter stops growing, then SIGTERM. The pairs topic is read from offset 0 with a plain
consumer: records, distinct pair_ids, the pair_ids the generator's truth expects (producers/truth.py), and
for each repeated pair_id the partition and offset of every copy with the input offsets it names (never a
prompt or an answer), then the worker's log lines about group membership, commits, re-reads and warnings.
With ``--same-broker`` the runs share one broker and its pairs topic (new app id each, as peer_quix.py's
rounds); each run is counted from where the previous one truly ended, and also as a reader starting at
the ends ListOffsets reported before the run would count it: on the embedded broker that end is the
base offset of the last produce batch + 1, so that reader counts the previous run's tail again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from processor_throughput import metric

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.kafka.topics import ensure_topics
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.producers.truth import expected_outcomes
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.tables import TABLES
from preflog.settings import TopicSettings, load_settings, settings_env

NAMESPACE = uuid.UUID("6d1c2a52-8a6e-4c1b-9b0f-5f1d0f4b7a10")  # processors/pairs.py, restated to stay independent
LOG_LINES = re.compile(
    r"rebalanc|assign|revok|generation|join(ed|ing) group|commit|recover|skipped|quiet for|abandon|seek|"
    r"heartbeat|coordinator|error produce|retrying|Traceback|WARNING|ERROR|CRITICAL",
    re.I,
)


def read_all(bootstrap: str, topic: str, partitions: int, quiet_s: float = 4.0) -> list:
    """Every record of ``topic`` from offset 0, until nothing arrives for ``quiet_s`` (no watermarks: broker.md)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reemit-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})  # fmt: skip
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last = [], time.monotonic()
    try:
        while time.monotonic() - last < quiet_s:
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    out.append(m)
                    last = time.monotonic()
    finally:
        c.close()
    return out


def list_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The end of each partition as ListOffsets reports it (what get_watermark_offsets and Faust's lag use)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reemit-ends"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


def count(label: str, msgs: list, expected: set[str]) -> tuple[dict, dict]:
    """Print records, distinct and repeated pair_ids of ``msgs`` (partition/offsets of the copies, no texts)."""
    codec, topic = SingleObjectCodec(), TopicSettings().pairs
    copies: dict[str, list[tuple]] = defaultdict(list)
    for m in msgs:
        r = codec.decode(m.value(), TABLES["pairs"].record, topic)
        fb, inf = r["feedback_offset"], r["inference_offset"]
        copies[r["pair_id"]].append((m.partition(), m.offset(), m.timestamp()[1], fb["partition"], fb["offset"],
                                     inf["offset"]))  # fmt: skip
    dups = {k: v for k, v in copies.items() if len(v) > 1}
    print(f"{label}: {len(msgs)} records, {len(copies)} distinct pair_ids, expected {len(expected)}, "
          f"missing {len(expected - copies.keys())}, unexpected {len(copies.keys() - expected)}, "
          f"repeated pair_ids {len(dups)} ({sum(len(v) - 1 for v in dups.values())} extra copies)")  # fmt: skip
    for pid, cs in sorted(dups.items(), key=lambda kv: kv[1][0][:2]):
        shown = "; ".join(f"p{p} off {o} ts {ts / 1000:.3f} (feedback p{fp} off {fo}, inference off {io})"
                          for p, o, ts, fp, fo, io in cs)  # fmt: skip
        print(f"  {pid}: {shown}")
    return copies, dups


def load(broker: EmbeddedBroker, events: list) -> dict:
    """Topics created, the generated traffic sent through the SDK; what was sent, by kind."""
    topics, conf = TopicSettings(), {"bootstrap.servers": broker.bootstrap_servers}
    ensure_topics(conf, topics.all().values(), topics.partitions)
    with PreflogProducer({**conf, "linger.ms": 20}, load_settings().make_codec(), topics) as log:
        return dict(send_traffic(events, log, pace=False))


def one_run(
    i: int,
    args: argparse.Namespace,
    events: list,
    expected: set[str],
    root: Path,
    shared: EmbeddedBroker | None = None,
    sent: dict | None = None,
    before: dict | None = None,
) -> dict:
    """One processor run (on ``shared`` with its input already sent, or on a broker of its own)."""
    started, work, topics = time.monotonic(), root / f"run{i}", TopicSettings()
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(shared) if shared else EmbeddedBroker(work / "broker") as broker:
        sent = sent or load(broker, events)
        n = sent["inference"] + sent["feedback"]
        listed = list_offsets(broker.bootstrap_servers, topics.pairs, topics.partitions)
        port = free_port()
        processor = {"session_timeout_s": 6, "recovery_consistency_check": False, "store": args.store,
                     "app_id": f"preflog-reemit-{i}", "metrics_port": port, "state_dir": str(work / "state"),
                     **dict(s.split("=", 1) for s in args.set)}  # fmt: skip
        settings = load_settings({"kafka": {"bootstrap_servers": broker.bootstrap_servers},
                                  "data_dir": str(work), "processor": processor})  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")} | settings_env(settings)
        logfile = work / "processor.log"
        t0 = time.time()
        with logfile.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "preflog", "process", "--loglevel", "info"],
                                    env=env, stdout=err, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline, pairs, stable_since = time.monotonic() + 300, -1.0, time.monotonic()
            while time.monotonic() < deadline and proc.poll() is None:
                got, now = metric(port, "preflog_processor_pairs_out_total"), time.monotonic()
                if got != pairs:
                    pairs, stable_since = got, now
                if metric(port, "preflog_processor_events_in_total") >= n and now - stable_since >= args.settle:
                    break
                time.sleep(0.5)
            events_in = metric(port, "preflog_processor_events_in_total")
        finally:
            stopped = time.time()
            proc.terminate()
            proc.wait(60)
        msgs = read_all(broker.bootstrap_servers, topics.pairs, topics.partitions)
    ends = {p: max([m.offset() + 1 for m in msgs if m.partition() == p], default=0) for p in range(topics.partitions)}
    print(f"\n=== run {i}: sent {n} events ({dict(sent)}), processor events_in {events_in:.0f}, "
          f"exit {proc.returncode}, processor ran {t0:.3f} .. {stopped:.3f}")  # fmt: skip
    mine = [m for m in msgs if m.offset() >= (before or {}).get(m.partition(), 0)]  # this run's records only
    copies, dups = count(f"pairs topic from the previous run's true ends {before or {}}", mine, expected)
    if shared is not None and i:  # what a reader starting at ListOffsets' ends (taken before the run) counts
        count(f"pairs topic from ListOffsets' ends {listed}", [m for m in msgs if m.offset() >= listed[m.partition()]],
              expected)  # fmt: skip
    lines = [ln for ln in logfile.read_text(errors="replace").splitlines() if LOG_LINES.search(ln)]
    print(f"log ({logfile}): {len(lines)} matching lines")
    for ln in lines[: args.log_lines]:
        print("  " + ln[:300])
    took = time.monotonic() - started
    print(f"run {i} took {took:.1f} s")
    return {"records": len(mine), "distinct": len(copies), "dups": len(dups), "took": took, "ends": ends}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--store", default="rocksdb://")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds the pair counter must stay unchanged")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a processor setting")
    parser.add_argument("--log-lines", type=int, default=80)
    parser.add_argument("--same-broker", action="store_true", help="all runs on one broker (as peer_quix.py)")
    parser.add_argument("--keep", help="directory for the runs' files (default: a new temporary one)")
    args = parser.parse_args()
    events = generate(TrafficProfile(requests=args.requests, invalid=0.0, rate=100),
                      start=datetime(2026, 11, 1, tzinfo=timezone.utc))  # fmt: skip
    truth = expected_outcomes(events)
    expected = {str(uuid.uuid5(NAMESPACE, f"pair:{f}:{c}:{r}")) for f, c, r in truth.pairs}
    root = Path(args.keep or tempfile.mkdtemp(prefix="preflog-reemit-"))
    if not args.same_broker:
        results = [one_run(i, args, events, expected, root) for i in range(args.runs)]
    else:  # as peer_quix.py: input sent once, a new app id per run, every run writing to the same pairs topic
        results, before = [], dict[int, int]()
        with EmbeddedBroker(root / "broker") as broker:
            sent = load(broker, events)
            for i in range(args.runs):
                results.append(one_run(i, args, events, expected, root, broker, sent, before))
                before = results[-1]["ends"]
    for i, r in enumerate(results):
        print(f"summary run {i}: {r['records']} records / {r['distinct']} distinct, {r['dups']} repeated, "
              f"{r['took']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
