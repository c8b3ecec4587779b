"""Join state at scale: worker RSS with N open inferences in the RocksDB store, and recovery after kill -9.

    python benchmarks/state_memory.py [--sizes 20000] [--json PATH]
    python benchmarks/state_memory.py --sizes 100000,300000,1000000   # the targets are for 1M

Per size N, on a fresh embedded broker (4 partitions), one worker with the
stack's processor settings, ``store rocksdb://`` and a 30-day window (nothing
expires while it runs):

1. Cold start, the baseline: the worker is launched and one inference with its
   PAIRWISE feedback is sent at once; *start to first pair* is the time until
   that pair is on the pairs topic; the worker's RSS then is the empty-state RSS.
2. N inferences without feedback (about 0.5 kB each) are sent with a fast
   producer; once the worker has read them all, its RSS (VmRSS, the highest of
   three samples over 2 s) and the state directory's size on disk are reported.
3. The worker is killed with SIGKILL and started again on the same state
   directory and app id; at once a PAIRWISE feedback is sent for the first
   inference of each partition. *Recovery* is the time from the restart to the
   last of those pairs on the pairs topic: a pair can only be made from the
   inference in the worker's recovered state (those inferences were committed
   long before the kill, so they are not read again from the input), and it is
   what a user sees. The worker's ``preflog_processor_state_keys`` gauge is no
   use here: the expiry index it counts is rebuilt lazily, partition by partition.
   Recovery includes the consumer-group rejoin (the killed member's session,
   ``session_timeout_s`` 6 s, must lapse first).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench_stack import (
    Message,
    Service,
    TopicWatcher,
    broker_with_topics,
    fast_produce,
    service_settings,
    stack_processor,
    wait_for,
)
from report_rows import Row, write_rows

from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record
from preflog.settings import TopicSettings

EVENTS_IN = "preflog_processor_events_in_total"
WINDOW_S = 30 * 86400.0
TRACK = 2000  # the first inferences whose partition is noted (the recovery probes are among them)
BODY = "The ticket reports a timeout in the export job after the upgrade; the fix is to raise the limit and retry. "


def inference(rng: random.Random, i: int, when: datetime) -> dict[str, Any]:
    """A small valid inference (two candidates, about 0.5 kB encoded)."""
    return {
        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_time": when,
        "prompt": f"Summarise ticket #{i} for the on-call engineer.",
        "candidates": [BODY + f"Option A{i}.", BODY[::-1] + f" Option B{i}."],
        "model": {"name": "acme-chat", "version": "2026.11"},
        "context": {"session_id": f"s-{i % 5000}", "user_id": f"u-{i % 500}"},
    }


def feedback(request_id: str, when: datetime) -> dict[str, Any]:
    """A PAIRWISE judgement of ``request_id``."""
    return {
        "feedback_id": str(uuid.uuid4()),
        "request_id": request_id,
        "event_time": when,
        "kind": "PAIRWISE",
        "pairwise": {"chosen": 1, "rejected": 0},
        "source": {"type": "HUMAN_ANNOTATOR", "id": "bench"},
    }


class Load:
    """The N inferences, encoded as they are sent; keeps the request ids of the first :data:`TRACK`."""

    def __init__(self, n: int, codec: Codec, topics: TopicSettings, when: datetime) -> None:
        self.n, self.codec, self.topics, self.when = n, codec, topics, when
        self.first: list[str] = []
        self.partition: dict[int, int] = {}  # index -> partition (first TRACK)
        self.bytes = 0

    def __iter__(self) -> Iterator[Message]:
        rng = random.Random(11)
        topic = self.topics.inference
        for i in range(self.n):
            record = inference_record(inference(rng, i, self.when))
            value = self.codec.encode("InferenceEvent", record, topic)
            self.bytes += len(value)
            if i < TRACK:
                self.first.append(record["request_id"])
            yield topic, record["request_id"], value

    def note(self, i: int, partition: int) -> None:
        """Delivery report of one of the first inferences."""
        self.partition[i] = partition

    def probes(self) -> list[str]:
        """The request id of the first inference of each partition."""
        seen: dict[int, str] = {}
        for i in sorted(self.partition):
            seen.setdefault(self.partition[i], self.first[i])
        return list(seen.values())


def judge(bootstrap: str, codec: Codec, topics: TopicSettings, request_ids: list[str], when: datetime) -> None:
    """Send a PAIRWISE feedback for each of ``request_ids``."""
    topic = topics.feedback
    fast_produce(
        bootstrap,
        [(topic, r, codec.encode("FeedbackEvent", feedback_record(feedback(r, when)), topic)) for r in request_ids],
    )


def peak_rss(worker: Service, samples: int = 3, every: float = 1.0) -> float:
    """The highest RSS (MB) of ``samples`` samples ``every`` seconds apart."""
    peak = 0.0
    for k in range(samples):
        peak = max(peak, worker.rss_mb())
        if k < samples - 1:
            time.sleep(every)
    return peak


def run(work: Path, n: int) -> dict[str, float]:
    """The figures of one size."""
    when = datetime.now(timezone.utc).replace(microsecond=0)
    with broker_with_topics(work) as (bootstrap, topics):
        state_dir = work / "state"
        processor = {"app_id": "preflog-bench-state", "store": "rocksdb://", "state_dir": str(state_dir)}
        settings = service_settings(bootstrap, topics, work, processor | {"window_s": WINDOW_S})
        codec = settings.make_codec()
        paired: dict[str, float] = {}  # request_id -> when its first pair was read

        def on_pair(value: bytes, seen_at: float, _: float) -> None:
            paired.setdefault(codec.decode(value, "PreferencePair", topics.pairs)["request_id"], seen_at)

        watcher = TopicWatcher(bootstrap, topics.pairs, topics.partitions, on_pair)
        watcher.start()
        worker = Service("process", settings, work, "processor")
        try:
            cold = inference_record(inference(random.Random(1), -1, when))
            started = time.time()
            worker.start()
            fast_produce(
                bootstrap,
                [(topics.inference, cold["request_id"], codec.encode("InferenceEvent", cold, topics.inference))],
            )
            judge(bootstrap, codec, topics, [cold["request_id"]], when + timedelta(seconds=1))
            cold_s = wait_for(lambda: cold["request_id"] in paired, 300, "the first pair") - started
            worker.wait_port()
            empty_rss = peak_rss(worker, 1)

            load = Load(n, codec, topics, when)
            load_started = time.time()
            fast_produce(bootstrap, load, load.note, TRACK)
            print(
                f"  N={n:,}: produced {n:,} inferences ({load.bytes / n:.0f} B each) "
                f"in {time.time() - load_started:.0f} s"
            )
            done = wait_for(lambda: worker.metric(EVENTS_IN) >= n + 2, n / 100 + 300, f"{n} inferences read", 0.5)
            rss = peak_rss(worker)
            disk = sum(f.stat().st_size for f in state_dir.rglob("*") if f.is_file()) / 2**20
            print(
                f"  all read {done - load_started:.0f} s after the load started; RSS {rss:.0f} MB, disk {disk:.0f} MB"
            )

            worker.kill9()
            probes = load.probes()
            restarted = time.time()
            worker.start()
            judge(bootstrap, codec, topics, probes, when + timedelta(seconds=2))
            last = wait_for(lambda: all(r in paired for r in probes), 900, "the pairs after the restart", 0.1)
            first = min(paired[r] for r in probes)
            recovered_rss = peak_rss(worker, 1)
        finally:
            worker.stop()
            watcher.stop()
    return {
        "cold": cold_s,
        "empty_rss": empty_rss,
        "rss": rss,
        "disk": disk,
        "recovery": last - restarted,
        "first": first - restarted,
        "recovered_rss": recovered_rss,
        "probes": len(probes),
    }


def row(
    what: str, figure: float, unit: str, baseline: tuple[str, float] | None = None, target: str | None = None
) -> Row:
    """A row of the memory group; ``baseline`` is the (label, figure) of the row it is compared with."""
    ratio = round(figure / baseline[1], 2) if baseline else None
    label = baseline[0] if baseline else None
    return {
        "group": "memory",
        "what": what,
        "figure": round(figure, 2),
        "unit": unit,
        "baseline": label,
        "ratio": ratio,
        "target": target,
    }


def rows_of(n: int, f: dict[str, float]) -> list[Row]:
    """The rows of one size (targets on the 1M row: RSS <= 400 MB, recovery <= 60 s)."""
    big = n >= 1_000_000
    empty = (f"worker RSS, empty state (N={n:,} run)", f["empty_rss"])
    cold = (f"start to first pair, empty state (N={n:,} run)", f["cold"])
    return [
        row(empty[0], empty[1], "MB"),
        row(f"worker RSS, {n:,} open inferences", f["rss"], "MB", empty, "<= 400" if big else None),
        row(f"state on disk, {n:,} open inferences", f["disk"], "MB"),
        row(cold[0], cold[1], "s"),
        row(f"recovery after kill -9, {n:,} open", f["recovery"], "s", cold, "<= 60" if big else None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000", help="open inferences per run, comma-separated")
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="preflog-state-"))
    print(f"processor settings from preflog up (deploy/stack.py): {stack_processor()}")
    rows: list[Row] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        f = run(work / str(n), n)
        print(
            f"N={n:>9,}  RSS {f['rss']:6.0f} MB (empty {f['empty_rss']:.0f} MB, "
            f"after recovery {f['recovered_rss']:.0f} MB)"
            f"  disk {f['disk']:5.0f} MB  recovery {f['recovery']:6.2f} s (first of {f['probes']:.0f} pairs "
            f"{f['first']:.2f} s; cold start to first pair {f['cold']:.2f} s)"
        )
        rows += rows_of(n, f)
    print("targets at N=1,000,000: RSS <= 400 MB, recovery <= 60 s")
    if args.json:
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
