"""The checks of a run: what was expected (from the generator and the bad-input list), what the log holds.

Expectations never come from the Joiner: :func:`expectations` takes the
generator's own decisions and each hostile record's expected outcome;
:func:`check` compares them with the rows read back and finds each sent
record's outcome by its offset; :func:`ok` is the goal; :func:`reconcile`
runs ``preflog reconcile --final`` over the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fault_inputs import BadInput, Expect
from fault_traffic import Sent

from preflog.producers.generator import GeneratedEvent, expected_outcomes

if TYPE_CHECKING:
    from fault_run import Run

__all__ = ["Expected", "check", "expectations", "ok", "reconcile"]


@dataclass
class Expected:
    """What a correct pipeline stores for a run: pairs, signals, unmatched ids, and outcomes by offset."""

    pairs: set[tuple[str, int, int]] = field(default_factory=set)
    signals: set[tuple[str, int]] = field(default_factory=set)
    unmatched: dict[str, set[str]] = field(default_factory=dict)
    dead_letters: list[tuple[str, Sent, Expect]] = field(default_factory=list)  # (label, sent, expectation)
    at_offset: list[tuple[str, Sent, Expect, BadInput | None]] = field(default_factory=list)
    # --api: outcomes of events the API never acknowledged, which may or may not be there (never lost)
    allowed_pairs: set[tuple[str, int, int]] = field(default_factory=set)
    allowed_signals: set[tuple[str, int]] = field(default_factory=set)
    allowed_unmatched: dict[str, set[str]] = field(default_factory=dict)


def expectations(events: list[GeneratedEvent], sent: list[Sent], bad: list[BadInput], movers: set[Any]) -> Expected:
    """What the run must find, from the generator's decisions, the bad inputs and the movers.

    Args:
        events: The generated traffic.
        sent: Every record sent, with its offsets (generated events are labelled ``gen:<index>``).
        bad: The hostile records and their companions.
        movers: The pairs the closing movers make.

    Returns:
        The expected pairs, signals and unmatched ids, and each record whose outcome is looked up by offset.
    """
    truth = expected_outcomes(events)
    exp = Expected(set(truth.pairs) | movers, set(truth.signals), {k: set(v) for k, v in truth.unmatched.items()})
    by_label = {s.label: s for s in sent}
    index = {id(e): i for i, e in enumerate(events)}
    for e in truth.dead_letters:
        item = by_label[f"gen:{index[id(e)]}"]
        exp.at_offset.append((f"generated {e.invalid_reason}", item, Expect("dead_letter"), None))
    for b in bad:
        item = b.sent_at["item"]
        exp.at_offset.append((b.kind, item, b.expect, b))
        if b.expect.table == "pairs" and b.feedback_id:
            chosen, rejected = b.expect.detail
            if not b.expect.alternatives:
                exp.pairs.add((b.feedback_id, chosen, rejected))
    return exp


def _offset_key(row: dict[str, Any]) -> tuple[str, int, int]:
    """The (topic, partition, offset) a dead-letter or unmatched row came from."""
    so = row["source_offset"]
    return (so["topic"], so["partition"], so["offset"])


def check(run: Run, exp: Expected, rows: dict[str, list[dict[str, Any]]], topic_ids: set[str]) -> dict[str, Any]:
    """Compares what the log holds with what was expected.

    Args:
        run: The run (its sender's records say what was never delivered).
        exp: The expectations.
        rows: The rows read back, per table.
        topic_ids: pair_ids on the pairs topic, to tell a processor loss from a sink loss.

    Returns:
        The results per table (expected, stored, lost, duplicated, unexpected) and each bad input's outcome.
    """
    from preflog.processors.pairs import pair_id  # only to name a pair on the topic; expectations are independent

    pair_rows = rows["pairs"]
    stored_pairs = Counter((r["feedback_id"], r["chosen_index"], r["rejected_index"]) for r in pair_rows)
    pair_ids = Counter(r["pair_id"] for r in pair_rows)
    lost = exp.pairs - set(stored_pairs)
    bad_pair_alternatives = {
        (b.feedback_id, *b.expect.alternatives[0].detail)
        for _, _, e, b in exp.at_offset
        if b is not None and b.feedback_id and e.alternatives and e.alternatives[0].table == "pairs"
    }
    unexpected = set(stored_pairs) - exp.pairs - bad_pair_alternatives - exp.allowed_pairs
    lost_in = Counter("processor (not on the pairs topic)" if pair_id(*p) not in topic_ids else "sink" for p in lost)

    signal_rows = rows["unpaired"]
    stored_signals = Counter((r["feedback_id"], r["completion_index"]) for r in signal_rows)
    signal_ids = Counter(r["signal_id"] for r in signal_rows)

    unmatched_rows = rows["unmatched"]
    by_reason: dict[str, Counter[str]] = defaultdict(Counter)
    for r in unmatched_rows:
        ident = r["request_id"] if r["reason"] == "NO_FEEDBACK" else r["feedback_id"]
        by_reason[r["reason"]][ident] += 1
    dl_by_offset: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows["dead_letter"]:
        dl_by_offset[_offset_key(r)].append(r)
    um_by_offset: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in unmatched_rows:
        um_by_offset[_offset_key(r)].append(r)

    # unmatched expected from the bad-input list (by offset) join the generator's (by id)
    expected_unmatched = {k: set(v) for k, v in exp.unmatched.items()}
    for _, _item, e, b in exp.at_offset:
        if b is not None and e.table == "unmatched" and not e.alternatives:
            ident = b.request_id if e.detail == "NO_FEEDBACK" else b.feedback_id
            if ident:
                expected_unmatched.setdefault(e.detail, set()).add(ident)
    allowed = {
        (b.request_id if a.detail == "NO_FEEDBACK" else b.feedback_id)
        for _, _, e, b in exp.at_offset
        if b is not None
        for a in (e, *e.alternatives)
        if a.table == "unmatched"
    }
    unmatched_report = {}
    for reason in sorted(set(expected_unmatched) | set(by_reason)):
        want, got = expected_unmatched.get(reason, set()), by_reason.get(reason, Counter())
        unmatched_report[reason] = {
            "expected": len(want),
            "stored": len(set(got)),
            "missing": len(want - set(got)),
            "unexpected": len(set(got) - want - allowed - exp.allowed_unmatched.get(reason, set())),
            "duplicated": sum(1 for n in got.values() if n > 1),
            "missing_ids": sorted(want - set(got))[:10],
        }

    # every record sent for a reason: its outcome, found by its offset
    bad_report = []
    accounted = total = dl_ok = dl_total = companions_wrong = 0
    for label, item, e, b in exp.at_offset:
        outcome = _outcome(item, e, b, dl_by_offset, um_by_offset, stored_pairs)
        is_bad = b is None or not b.companion
        companions_wrong += not is_bad and not outcome["ok"]
        if is_bad:
            total += 1
            accounted += outcome["ok"]
            if e.table == "dead_letter":
                dl_total += 1
                dl_ok += outcome["ok"]
        bad_report.append({"kind": label, "companion": not is_bad, "expected": e.describe(), **outcome})

    never_delivered = [s.label for s in run.sender.sent if not s.offsets] if run.sender else []
    pairs_duplicated = sum(n - 1 for n in pair_ids.values() if n > 1)
    signals_duplicated = sum(n - 1 for n in signal_ids.values() if n > 1)
    dl_duplicated = sum(len(v) - 1 for v in dl_by_offset.values() if len(v) > 1)
    um_duplicated = sum(len(v) - 1 for v in um_by_offset.values() if len(v) > 1)
    lost_detail = []
    for fid, chosen, rejected in sorted(lost)[:20]:
        traces = [f"unmatched {u['reason']}" for u in unmatched_rows if u["feedback_id"] == fid]
        lost_detail.append(
            {
                "pair": [fid, chosen, rejected],
                "pair_id": pair_id(fid, chosen, rejected),
                "on_topic": pair_id(fid, chosen, rejected) in topic_ids,
                "traces": traces,
            }
        )
    return {
        "pairs": {
            "expected": len(exp.pairs),
            "stored": len(stored_pairs),
            "rows": len(pair_rows),
            "lost": len(lost),
            "lost_in": dict(lost_in),
            "lost_detail": lost_detail,
            "duplicated": pairs_duplicated,
            "unexpected": len(unexpected),
            "unexpected_sample": [list(u) for u in sorted(unexpected)[:10]],
        },
        "signals": {
            "expected": len(exp.signals),
            "stored": len(stored_signals),
            "lost": len(exp.signals - set(stored_signals)),
            "duplicated": signals_duplicated,
            "unexpected": len(set(stored_signals) - exp.signals - exp.allowed_signals),
        },
        "unmatched": unmatched_report,
        "unmatched_duplicated_by_offset": um_duplicated,
        "dead_letters": {"rows": len(rows["dead_letter"]), "duplicated_by_offset": dl_duplicated},
        "bad_inputs": {
            "accounted": accounted,
            "expected": total,
            "dead_lettered_with_reason": dl_ok,
            "dead_letters_expected": dl_total,
            "companions_wrong": companions_wrong,
            "records": bad_report,
        },
        "never_delivered": never_delivered,
    }


def _outcome(
    item: Sent,
    e: Expect,
    b: BadInput | None,
    dl: dict[tuple[str, int, int], list[dict[str, Any]]],
    um: dict[tuple[str, int, int], list[dict[str, Any]]],
    stored_pairs: Counter[tuple[str, int, int]],
) -> dict[str, Any]:
    """What became of one record, by its offset(s), and whether that is one of the expected outcomes."""
    found: list[str] = []
    for off in item.offsets:
        found += [f"dead_letter {r['error_class']}: {r['reason'][:160]}" for r in dl.get(off, [])]
        found += [f"unmatched {r['reason']}" for r in um.get(off, [])]
    if b is not None and b.feedback_id:
        found += [f"pairs {(c, r)}" for (f, c, r) in stored_pairs if f == b.feedback_id]
    ok = False
    for option in (e, *e.alternatives):
        if option.table == "none":
            ok = ok or not found
        elif option.table == "dead_letter":
            dls = [f for f in found if f.startswith("dead_letter")]
            has_reason = all(len(f.split(": ", 1)[-1]) > 0 for f in dls)
            right_class = option.detail is None or all(f.startswith(f"dead_letter {option.detail}:") for f in dls)
            ok = ok or (len(dls) >= 1 and len(found) == len(dls) and has_reason and right_class)
        elif option.table == "unmatched":
            ok = ok or (bool(found) and all(f == f"unmatched {option.detail}" for f in found))
        elif option.table == "pairs":
            ok = ok or found == [f"pairs {tuple(option.detail)}"]
    return {"ok": ok, "found": found, "offsets": item.offsets}


def reconcile(run: Run) -> dict[str, Any]:
    """``preflog reconcile --final --json`` over the audit log: the traffic has stopped and drained."""
    assert run.sink is not None and run.moto is not None and run.processor is not None
    env = {**run.processor.env, **run.sink.env, "PREFLOG_SINK__S3_ENDPOINT_URL": run.moto.endpoint}
    result = subprocess.run(
        [sys.executable, "-m", "preflog", "reconcile", "--final", "--json"],
        env=env,
        cwd=run.code_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out: dict[str, Any] = {"available": True, "exit_code": result.returncode}
    try:
        out["report"] = json.loads(result.stdout)
    except ValueError:
        out["stdout"] = result.stdout[-2000:]
        out["stderr"] = result.stderr[-2000:]
    return out


def ok(results: dict[str, Any]) -> bool:
    """The goal: nothing lost, nothing duplicated, every bad input and every expected outcome accounted for.

    ``preflog reconcile --final`` must agree: a record with two outcomes (say joined, and also unmatched
    NO_FEEDBACK) is a wrong audit log even when every expected outcome is there. With privacy on, its checks
    (``fault_privacy.check``) must pass too; with ``--api``, the API's (``fault_api.check``).
    """
    p, b = results["pairs"], results["bad_inputs"]
    return (
        p["lost"] == 0
        and p["duplicated"] == 0
        and p["unexpected"] == 0
        and results["signals"]["lost"] == 0
        and results["signals"]["duplicated"] == 0
        and b["accounted"] == b["expected"]
        and b["companions_wrong"] == 0
        and all(v["missing"] == 0 and v["duplicated"] == 0 for v in results["unmatched"].values())
        and results["dead_letters"]["duplicated_by_offset"] == 0
        and not results["never_delivered"]
        and results["reconcile"].get("exit_code") == 0  # every record has exactly one outcome, none pending
        and results.get("privacy", {"ok": True})["ok"]
        and results.get("api", {"ok": True})["ok"]
    )
