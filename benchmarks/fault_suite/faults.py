"""Fault suite: generated traffic with known outcomes, faults injected, the audit log checked independently.

    python benchmarks/fault_suite/faults.py             # the short run (what tests/integration/test_faults.py runs)
    python benchmarks/fault_suite/faults.py --full      # >=10 kill -9 of each service, broker restart, outages,
                                                        # every bad input
    python benchmarks/fault_suite/faults.py --full --json
    python benchmarks/fault_suite/faults.py --privacy   # the same with privacy on: sealed traffic, an erasure midway
    python benchmarks/fault_suite/faults.py --api       # the traffic posted to `preflog serve` by HTTP clients
                                                        # (also --full)

What it starts (loopback only, every child in its own process group, all
killed on exit): moto's S3 server; Tansu with its log in S3 (``--storage-engine
s3://``) behind a TCP proxy (clients only know the proxy port, which the
broker advertises); ``preflog process`` and ``preflog sink`` as subprocesses,
the sink writing ``s3://`` through a second proxy.

What it expects comes from the generator's own decisions
(``producers.generator.expected_outcomes``) and from the list of hostile
inputs (``fault_inputs.py``), never from the Joiner. What it finds is read
straight from the Parquet files in S3 (pyarrow), and from the pairs topic, to
say whether a missing pair was lost by the processor or by the sink.

Faults: kill -9 of the processor at random moments (some during its start-up
recovery); kill -9 of the sink at random moments and right after a new file
appears; kill -9 of the broker and a restart on the same port (the log is in
S3); the broker's network cut (connections refused, or blackholed); the object
store cut (the sink's S3 proxy refuses or blackholes); hostile records sent
raw beside the traffic. Exit code 1 unless nothing is lost, nothing
duplicated and every bad input is accounted for.

``--privacy`` runs the same plan with privacy on (``fault_privacy.py``): the
generated traffic goes through the SDK sealed, its data keys on a keys topic
of the same broker; halfway through the traffic ``preflog erase`` erases
generated users. Then, beside the checks above, the log is read with the
keyring: the erased users' rows read as erased (counted against the
generator's truth), every other row opens to what was sent.

``--api`` puts the HTTP ingestion API in front (``fault_api.py``): ``preflog
serve`` runs as one more service (through the same broker proxy, killed with
the run) and the valid generated events are posted to it in small batches by a
few client threads, which send the same events again after a 429, a 503 or a
connection error, as a real client would, and record what was acknowledged.
The plan's broker faults (cuts; kill -9 and restart with ``--full``) and a
kill -9 of the API come while they send. Then a pair whose inference and
feedback were both acknowledged must be in the log exactly once; events never
acknowledged may or may not have landed (not lost), but nothing is doubled.
Hostile and invalid inputs are still sent raw.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1]):  # fault_* helpers beside this file; tests.tcp_proxy from the repo root
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# the suite's parts: fault_plan (what a run does), fault_run (the stack and the traffic, with fault_stack and
# fault_traffic), fault_schedule (the faults), fault_readback (the log read back), fault_checks (expectations
# and checks), fault_report (the table); the hostile records are fault_inputs, fault_cases and fault_records;
# --privacy is fault_privacy, --api (the HTTP API in front, its clients and checks) fault_api
from fault_api import check as api_check  # noqa: E402
from fault_api import expectations as api_expectations  # noqa: E402
from fault_checks import check, expectations, ok, reconcile  # noqa: E402
from fault_inputs import BadInput, bad_inputs  # noqa: E402
from fault_plan import FULL, SHORT, Plan, log, with_api  # noqa: E402
from fault_privacy import check as privacy_check  # noqa: E402
from fault_privacy import erase_midway  # noqa: E402
from fault_readback import converge, dump, topic_pairs  # noqa: E402
from fault_report import table  # noqa: E402
from fault_run import Run  # noqa: E402
from fault_schedule import schedule, watchdog  # noqa: E402

__all__ = ["FULL", "SHORT", "Plan", "main", "run_plan", "table", "with_api"]


def run_plan(plan: Plan, workdir: Path | None = None) -> dict[str, Any]:
    """Run ``plan`` end to end; returns the results (``results['ok']`` says whether the goal was met)."""
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"preflog-faults-{plan.name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = Run(plan, workdir)
    log(f"fault suite ({plan.name}) in {workdir}")
    try:
        run.start()
        events, event_start = run.traffic()
        bad: list[BadInput] = []
        stop = threading.Event()
        traffic = threading.Thread(target=run.send_traffic, args=(events, stop), daemon=True)
        wall0 = time.monotonic()
        traffic.start()
        eraser = None
        if plan.privacy:  # halfway through the traffic, beside the faults
            eraser = threading.Thread(target=erase_midway, args=(run, events, wall0), daemon=True)
            eraser.start()
        time.sleep(3)
        for name, step in schedule(run):
            watchdog(run)
            gap = run.rng.uniform(1.0, 4.0) if plan.name == "short" else run.rng.uniform(3.0, 9.0)
            time.sleep(gap)
            log(f"fault: {name}")
            if name == "send bad inputs":  # event times near the traffic's current event time
                now = event_start + timedelta(seconds=time.monotonic() - wall0)
                bad = bad_inputs(plan.seed, now, plan.bad_kinds)
                shared = {b.request_id for b in bad if b.request_id} & {e.key for e in events}
                if shared:  # the suite's own mistake: a bad input's outcome would depend on a generated request
                    raise RuntimeError(f"bad inputs reuse {len(shared)} request_id(s) of the traffic: {sorted(shared)}")
                run.send_bad(bad)
            step()
        traffic.join()
        if eraser is not None:
            eraser.join()
        watchdog(run)
        assert run.sender is not None
        undelivered = run.sender.flush_and_retry()
        movers = run.movers()
        run.sender.flush_and_retry()
        log(f"traffic done: {len(run.sender.sent)} records sent ({undelivered} undelivered before movers)")
        if plan.api:  # what must be there: what the API acknowledged; the rest may be
            exp = api_expectations(run, events, run.sender.sent, bad, movers)
        else:
            exp = expectations(events, run.sender.sent, bad, movers)
        rows = converge(run, exp)
        dump(run, rows)
        topic_ids = topic_pairs(run)
        results = check(run, exp, rows, topic_ids)
        results["reconcile"] = reconcile(run)
        if plan.privacy:
            results["privacy"] = privacy_check(run, events)
        if plan.api:
            results["api"] = api_check(run, events, rows)
    finally:
        run.close()
    results.update(
        plan=asdict(plan),
        code=run.version + (" (services run from a copy taken at the start)" if plan.snapshot else ""),
        workdir=str(workdir),
        converged=run.converged,
        runtime_s=round(time.monotonic() - started, 1),
        faults=dict(run.faults),
        crashes=run.crashes,
        notes=run.notes + (run.sender.sdk_retries if run.sender else []),
        events_sent={
            "generated": len(events),
            "bad inputs (with companions)": len(bad),
            "movers": len(movers) * 2,
            "records delivered": sum(len(s.offsets) for s in run.sender.sent) if run.sender else 0,
        },
    )
    if plan.privacy and run.sender:
        results["events_sent"]["sealed by the SDK (privacy)"] = sum(1 for s in run.sender.sent if s.sealed_at)
    if "api" in results:
        results["events_sent"]["posted to the API (events)"] = results["api"]["events_via_api"]
    results["ok"] = ok(results)
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (workdir / "table.txt").write_text(table(results) + "\n")
    return results


def _exit_on_signal(signum: int, frame: Any) -> None:
    """Raise SystemExit, so the broker, moto and the services this run started are stopped before it ends."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """The command line: run the short (or ``--full``) plan, print the table, exit 1 unless it passed.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full suite (about 15 minutes)")
    parser.add_argument(
        "--privacy", action="store_true", help="privacy on: the SDK seals the traffic, users are erased midway"
    )
    parser.add_argument(
        "--api",
        action="store_true",
        help="the traffic posted to `preflog serve` by HTTP clients; broker cut/killed while they send",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON (after the table)")
    parser.add_argument("--requests", type=int, help="override the number of generated requests")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--store", choices=["rocksdb://", "memory://"], help="the processor's table store")
    parser.add_argument("--workdir", type=Path, help="where logs go (default: a new temp folder)")
    parser.add_argument("--list-bad-inputs", action="store_true", help="print each kind of bad input and its outcome")
    args = parser.parse_args(argv)
    if args.api and args.privacy:
        parser.error("--api and --privacy are separate runs (the API's privacy is not what --privacy checks)")
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: clean up (run_plan's finally) like Ctrl-C
        signal.signal(sig, _exit_on_signal)
    if args.list_bad_inputs:
        for b in bad_inputs(0, datetime.now(timezone.utc)):
            role = f"{b.role} (valid companion)" if b.companion else b.role
            print(f"{b.kind:60s} {role:28s} -> {b.expect.describe()}")
        return 0
    plan = FULL if args.full else SHORT
    if args.requests:
        plan.requests = args.requests
    if args.seed is not None:
        plan.seed = args.seed
    if args.store:
        plan.store = args.store
    plan.privacy = args.privacy
    if args.api:
        plan = with_api(plan)
    results = run_plan(plan, args.workdir)
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
