"""The runbook's disaster drill: a join worker loses its state volume, restarts empty, loses nothing.

    python benchmarks/drill_state_loss.py [--requests 100000]

On a fresh embedded broker (4 partitions), with a worker (``store
rocksdb://``, its state directory standing in for the pod's volume) and a
sink writing the audit log:

1. N inferences (candidates of 0.5-2 kB) are sent, and feedback for the first
   half of them; the drill waits until the worker has read every inference
   and the sink has written the first half's pairs.
2. The worker is killed with SIGKILL (the node is gone) and its state
   directory deleted (the volume with it).
3. The worker starts again on an empty directory: it rebuilds its state from
   the table's changelog topic. ``/readyz`` is polled: every answer is printed
   with when it came.
4. Feedback for the second half is sent. Those pairs can only be made from
   inferences in the recovered state.
5. The audit log is read back and checked against the pair ids the drill
   computed from what it sent: every one present exactly once, and no
   feedback unmatched.

Exit code 0 only when the check holds.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench_stack import Service, broker_with_topics, fast_produce, service_settings, wait_for
from state_memory import feedback

import preflog
from preflog.processors.pairs import pair_id
from preflog.schemas.events import feedback_record, inference_record

BODY = "The ticket reports a timeout in the export job after the upgrade; the fix is to raise the limit and retry. "
EVENTS_IN = "preflog_processor_events_in_total"


def texts(rng: random.Random, i: int) -> list[str]:
    """Two candidates of 0.5-2 kB each."""
    return [(BODY * rng.randint(5, 19)) + f"Option {side}{i}." for side in "AB"]


def readiness(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, json.load(answer)["reason"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)["reason"]
    except OSError as exc:
        return 0, f"no answer ({type(exc).__name__})"


def say(began: float, text: str) -> None:
    print(f"[{time.monotonic() - began:7.1f} s] {text}", flush=True)


def drill(work: Path, n: int) -> bool:
    began = time.monotonic()
    when = datetime.now(timezone.utc).replace(microsecond=0)
    rng = random.Random(5)
    with broker_with_topics(work) as (bootstrap, topics):
        state_dir = work / "state"
        audit = (work / "audit").as_uri()
        processor = {"app_id": "preflog-drill", "store": "rocksdb://", "state_dir": str(state_dir), "window_s": 86400}
        settings = service_settings(bootstrap, topics, work, processor, url=audit, idle_flush_s=2)
        codec = settings.make_codec()
        worker = Service("process", settings, work, "processor")
        sink = Service("sink", settings, work, "sink")
        try:
            worker.start(), sink.start()
            requests = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
            inferences = [
                (
                    topics.inference,
                    r,
                    codec.encode(
                        "InferenceEvent",
                        inference_record(
                            {
                                "request_id": r,
                                "event_time": when,
                                "prompt": f"Summarise ticket #{i} for the on-call engineer.",
                                "candidates": texts(rng, i),
                                "model": {"name": "acme-chat", "version": "2026.11"},
                            }
                        ),
                        topics.inference,
                    ),
                )
                for i, r in enumerate(requests)
            ]
            size = sum(len(v) for _, _, v in inferences) / n
            fast_produce(bootstrap, inferences)
            del inferences
            say(began, f"sent {n:,} inferences ({size:,.0f} B each)")
            expected: set[str] = set()

            def judge(part: list[str]) -> None:
                batch = []
                for r in part:
                    fb = feedback(r, when)  # PAIRWISE, candidate 1 over 0
                    expected.add(pair_id(fb["feedback_id"], 1, 0))
                    batch.append(
                        (topics.feedback, r, codec.encode("FeedbackEvent", feedback_record(fb), topics.feedback))
                    )
                fast_produce(bootstrap, batch)

            half = n // 2
            judge(requests[:half])
            say(began, f"sent feedback for the first {half:,}")
            worker.wait_port(), sink.wait_port()
            wait_for(lambda: worker.metric(EVENTS_IN) >= n + half, n / 50 + 300, "the worker to read everything", 0.5)
            wait_for(lambda: sink.metric('preflog_sink_rows_written_total{table="pairs"}') >= half, 600, "pairs", 0.5)
            disk = sum(f.stat().st_size for f in state_dir.rglob("*") if f.is_file()) / 2**20
            say(began, f"the worker read all; {half:,} pairs in the audit log; state volume {disk:,.0f} MB")

            worker.kill9()
            shutil.rmtree(state_dir)
            say(began, f"kill -9 of the worker; its state volume deleted ({state_dir.exists()=})")
            restarted = time.monotonic()
            worker.start()
            port = worker.wait_port()
            seen: list[tuple[int, str]] = []
            while not seen or seen[-1][0] != 200:
                answer = readiness(port)
                phase = (answer[0], re.sub(r" \(\d+ to go\)", "", answer[1]))  # one line per phase, not per count
                if not seen or phase != seen[-1]:
                    seen.append(phase)
                    say(began, f"  /readyz {answer[0]} {answer[1]}")
                if time.monotonic() - restarted > 900:
                    raise TimeoutError("the restarted worker was not ready within 900 s")
                time.sleep(0.05)
            say(began, f"ready {time.monotonic() - restarted:.1f} s after the restart")

            judge(requests[half:])
            say(began, f"sent feedback for the other {n - half:,} (their inferences exist only in recovered state)")
            wait_for(lambda: sink.metric('preflog_sink_rows_written_total{table="pairs"}') >= n, 900, "pairs", 0.5)
            time.sleep(5)  # a duplicate or an unmatched record would come after the last pair
        finally:
            worker.stop(), sink.stop()
    counts = collections.Counter(preflog.read_pairs(audit).column("pair_id").to_pylist())
    unmatched = preflog.read_pairs(audit, table="unmatched") if (work / "audit" / "unmatched").exists() else None
    reasons = collections.Counter(unmatched.column("reason").to_pylist()) if unmatched is not None else {}
    missing, extra = len(expected - set(counts)), len(set(counts) - expected)
    doubled = sum(1 for c in counts.values() if c > 1)
    ok = not missing and not extra and not doubled and not reasons
    say(
        began,
        f"audit log: {len(counts):,} pairs of {len(expected):,} expected; missing {missing}, unexpected "
        f"{extra}, doubled {doubled}; unmatched {dict(reasons) or 0}",
    )
    say(began, "DRILL PASSED" if ok else "DRILL FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="inferences sent (default 100,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflog-drill-") as tmp:
        raise SystemExit(0 if drill(Path(tmp), args.requests) else 1)


if __name__ == "__main__":
    main()
