"""The fault suite's report: one table of what was injected, sent and found, and what went wrong."""

from __future__ import annotations

from typing import Any

__all__ = ["table"]


def table(results: dict[str, Any]) -> str:
    """The report of a run as aligned text: faults, traffic, each count, then what went wrong.

    Args:
        results: What :func:`faults.run_plan` returned.

    Returns:
        The table, one line a row; records not accounted for, lost pairs and crashes follow it.
    """
    p, s, b = results["pairs"], results["signals"], results["bad_inputs"]
    rows: list[tuple[str, str]] = [("faults injected", "")]
    rows += [(f"  {k}", str(v)) for k, v in sorted(results["faults"].items())]
    rows += [("events sent", "")]
    rows += [(f"  {k}", str(v)) for k, v in results["events_sent"].items()]
    rows += [
        ("everything expected arrived", "yes" if results["converged"] else "NO (stopped waiting: no progress)"),
        ("pairs expected / stored", f"{p['expected']} / {p['stored']} ({p['rows']} rows)"),
        ("pairs lost", f"{p['lost']}" + (f" {p['lost_in']}" if p["lost"] else "")),
        ("pairs duplicated (same pair_id twice)", str(p["duplicated"])),
        ("pairs unexpected", str(p["unexpected"])),
        (
            "signals expected / stored / lost / dup",
            f"{s['expected']} / {s['stored']} / {s['lost']} / {s['duplicated']}",
        ),
    ]
    for reason, u in results["unmatched"].items():
        rows.append(
            (
                f"unmatched {reason} expected / stored",
                f"{u['expected']} / {u['stored']} (missing {u['missing']}, unexpected {u['unexpected']}, "
                f"dup {u['duplicated']})",
            )
        )
    rows += [
        (
            "dead letters stored (dup by offset)",
            f"{results['dead_letters']['rows']} ({results['dead_letters']['duplicated_by_offset']})",
        ),
        ("unmatched dup by source offset", str(results["unmatched_duplicated_by_offset"])),
        (
            "bad inputs dead-lettered with a reason / expected",
            f"{b['dead_lettered_with_reason']} / {b['dead_letters_expected']}",
        ),
        ("bad inputs with their expected outcome / all", f"{b['accounted']} / {b['expected']}"),
        ("valid companions of bad inputs with a wrong outcome", str(b["companions_wrong"])),
        ("records never delivered", str(len(results["never_delivered"]))),
        ("services crashed by themselves", str(len(results["crashes"]))),
        ("reconcile", _reconcile_summary(results["reconcile"])),
    ]
    if "privacy" in results:
        from fault_privacy import summary_rows

        rows += summary_rows(results["privacy"])
    if "api" in results:
        from fault_api import summary_rows as api_rows

        rows += api_rows(results["api"])
    rows += [
        ("code", results["code"]),
        ("runtime", f"{results['runtime_s']} s"),
        ("RESULT", "PASS" if results["ok"] else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    wrong = [r for r in b["records"] if not r["ok"]]
    if wrong:
        lines.append("")
        lines.append("records not accounted for as expected:")
        for r in wrong:
            tag = " (companion)" if r["companion"] else ""
            lines.append(
                f"  - {r['kind']}{tag}: expected {r['expected']}; found {r['found'] or 'nothing'} at {r['offsets']}"
            )
    if p["lost_detail"]:
        lines.append("")
        lines.append("lost pairs (first 20):")
        for d in p["lost_detail"]:
            lines.append(f"  - {d['pair']} on topic: {d['on_topic']} traces: {d['traces'] or 'none'}")
    for reason, u in results["unmatched"].items():
        if u["missing"]:
            lines.append(f"missing unmatched {reason}: {u['missing_ids']}")
    for c in results["crashes"]:
        lines.append(f"crash: {c}")
    return "\n".join(lines)


def _reconcile_summary(r: dict[str, Any]) -> str:
    """One line from the result of ``preflog reconcile --final --json``."""
    if not r.get("available"):
        return r.get("note", "not run")
    report = r.get("report")
    if isinstance(report, dict):
        ledgers = report.get("inputs", []) + report.get("outputs", [])
        bad = [f"{led.get('topic')}[{led.get('partition')}]" for led in ledgers if not led.get("ok", True)]
        problems = list(report.get("problems", [])) + [p for led in ledgers for p in led.get("problems", [])]
        pending = sum(led.get("counts", {}).get("pending", 0) for led in ledgers)
        text = f"ok={report.get('ok')} (exit {r['exit_code']}); {len(problems)} problem(s); {pending} pending"
        if bad:
            text += f" in {', '.join(bad)}"
        if problems:
            text += f"; first: {str(problems[0])[:200]}"
        return text
    return f"exit {r['exit_code']}; unparsed output: {r.get('stderr', '')[-300:]}"
