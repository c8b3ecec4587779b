"""``preflog reconcile``: is every record accounted for, from the input topics to the audit log?"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from .console import console, out, settings_of

if TYPE_CHECKING:  # the command imports Kafka clients only when it runs
    from .sinks.reconcile import Reconciliation

__all__ = ["reconcile"]

INPUT_COLUMNS = ("joined", "unmatched", "dead-lettered", "duplicate", "open", "pending", "unaccounted")
STYLE: dict[str, Any] = {"box": SIMPLE_HEAD, "show_edge": False}  # fits 80 columns
INPUT_HEADERS = ("joined", "unmatched", "dead", "dup", "open", "pending", "unaccounted")
OUTPUT_COLUMNS = ("records", "in_files", "pending", "missing")


def reconcile(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(help="Audit log root (default: the sink's, <data-dir>/audit).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledgers as JSON (for scripts).")] = False,
    final: Annotated[
        bool,
        typer.Option("--final", help="Traffic has stopped and drained: anything still pending or open is a problem."),
    ] = False,
) -> None:
    """Account for every record, given a reachable broker; exit code 1 if anything is unaccounted.

    [b]Outputs[/]: each offset of pairs, unpaired, unmatched and dead letters is in one audit-log file
    (or a manifest's count of skipped duplicates).
    [b]Inputs[/]: each inference and feedback record has one outcome: joined, unmatched (with its reason),
    dead-lettered, a duplicate of a record with an outcome, or open in its window.
    What the processor or the sink has not committed yet is pending, not a problem.
    It reads every topic from the start and commits nothing.

    Example: preflog reconcile --json > ledger.json
    """
    from .sinks.reconcile import reconcile as run
    from .sinks.storage import Storage

    settings = settings_of(ctx)
    root = url or settings.audit_url()
    storage = Storage(root, settings.sink.storage_options())
    with console.status("reconciling") as status:
        result = run(settings, storage, progress=lambda text: status.update(text), final=final)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        t = settings.topics
        _print(result, root, {t.inference: "inference", t.feedback: "feedback"})
    if not result.ok:
        raise typer.Exit(1)


def _print(result: Reconciliation, root: str, roles: dict[str, str]) -> None:
    caption = ", ".join(f"{r}: {t}" for t, r in roles.items())
    table = Table("input", "p", *INPUT_HEADERS, title="inputs: the outcome of every record", caption=caption, **STYLE)
    for led in result.inputs:
        row = [str(sum(n for k, n in led.counts.items() if k.split(" ")[0] == column)) for column in INPUT_COLUMNS]
        table.add_row(roles.get(led.topic, led.topic), str(led.partition), *row, style=None if led.ok else "red")
    out.print(table)
    table = Table("output topic", "p", *OUTPUT_COLUMNS, title=f"outputs: every offset in {root}", **STYLE)
    for led in result.outputs:
        table.add_row(
            led.topic,
            str(led.partition),
            *(str(led.counts[c]) for c in OUTPUT_COLUMNS),
            style=None if led.ok else "red",
        )
    out.print(table)
    for problem in result.problems:
        out.print(f"  problem: {problem}", soft_wrap=True, markup=False, highlight=False)
    for led in result.inputs + result.outputs:
        for problem in led.problems:
            out.print(f"  {led.topic}[{led.partition}]: {problem}", soft_wrap=True, markup=False, highlight=False)
    out.print("OK: every record is accounted for" if result.ok else "UNACCOUNTED RECORDS FOUND")
