"""``preflog verify``, ``preflog export`` and ``preflog reconcile``: reading and checking the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..sinks.exceptions import MissingLogError
from .console import console, out, progress_bar, settings_of

if TYPE_CHECKING:  # the commands import Kafka clients only when they run
    from ..sinks.reconcile import Reconciliation

__all__ = ["MemoryOption", "memory_setting", "reconcile", "verify"]

INPUT_COLUMNS = ("joined", "unmatched", "dead-lettered", "duplicate", "open", "pending", "unaccounted")
STYLE: dict[str, Any] = {"box": SIMPLE_HEAD, "show_edge": False}  # fits 80 columns
INPUT_HEADERS = ("joined", "unmatched", "dead", "dup", "open", "pending", "unaccounted")
OUTPUT_COLUMNS = ("records", "in_files", "pending", "missing")


MemoryOption = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        help="Memory for counting and finding repeated ids, e.g. 512MB or 10% (of RAM); beyond it they spill to "
        "disk. Env: PREFLOG_MEMORY_LIMIT. Default: an eighth of RAM, at most 1 GiB.",
    ),
]


def memory_setting(given: str | None, settings: Any) -> str | None:
    """``--memory-limit`` or the settings' limit, checked (a bad size is a usage error, not a traceback)."""
    from ..sinks.scan import memory_limit

    limit = given if given is not None else settings.memory_limit
    try:
        memory_limit(limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory-limit") from None
    return limit


def verify(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(help="Audit log root (default: the sink's, <data-dir>/audit).")] = None,
    memory: MemoryOption = None,
) -> None:
    """Check the audit log: missing or altered files, offset gaps, files without manifest, duplicate ids.

    Exit code 0 when everything checks out, 1 when anything is wrong. Memory: one file at a time, and the ids
    counted on disk within --memory-limit.
    """
    from ..sinks.storage import Storage
    from ..sinks.verify import verify as run_verify

    settings = settings_of(ctx)
    limit = memory_setting(memory, settings)
    root = url or settings.audit_url()
    storage = Storage(root, settings.sink.storage_options())
    if next(storage.list(""), None) is None:  # a mistyped root must not read as a clean log
        raise MissingLogError(f"no audit log at {root}: no files under it (is the URL right?)")
    with progress_bar() as progress:
        task = progress.add_task("verifying", total=None)
        report = run_verify(storage, on_file=lambda _: progress.advance(task), memory=limit)
    table = Table(title=f"preflog verify {root}", show_header=False)
    table.add_row("files checked", str(report.files))
    table.add_row("rows", str(report.rows))
    problems = [
        ("missing file (manifest without data)", report.missing_files),
        ("checksum mismatch (altered file)", report.checksum_mismatches),
        ("data file without manifest", report.without_manifest),
        ("offset gap", report.gaps),
        ("overlapping ranges", report.overlaps),
        ("duplicate ids", [f"{t}: {n}" for t, n in report.duplicate_ids.items()]),
    ]
    for label, items in problems:
        table.add_row(label, str(len(items)))
    erased = _erased_rows(settings, root)
    if erased is not None:
        table.add_row("rows erased (their keys deleted; not a problem)", str(erased))
    out.print(table)
    for label, items in problems:
        for item in items[:50]:
            out.print(f"  {label}: {item}", soft_wrap=True, markup=False, highlight=False)
    for note in report.notes:
        out.print(f"  note: {note}", soft_wrap=True, markup=False, highlight=False)
    out.print("OK" if report.ok else "PROBLEMS FOUND")
    if not report.ok:
        raise typer.Exit(1)


def _erased_rows(settings: Any, root: str) -> int | None:
    """Rows of the log sealed with keys an erasure of this data directory deleted (None: no erasure here)."""
    from ..privacy.erase import erased_rows, receipts

    found = receipts(Path(settings.data_dir))
    if not found:
        return None
    keys = {k for r in found for k in r["keys_erased"]}
    return sum(erased_rows(root, keys, settings.sink.storage_options()).values())


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
    from ..sinks.reconcile import reconcile as run
    from ..sinks.storage import Storage

    settings = settings_of(ctx)
    root = url or settings.audit_url()
    storage = Storage(root, settings.sink.storage_options())
    with console.status("reconciling") as status:
        result = run(settings, storage, progress=lambda text: status.update(text), final=final)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        t = settings.topics
        horizon_s = settings.processor.window_s + settings.processor.grace_s
        _print(result, root, {t.inference: "inference", t.feedback: "feedback"}, horizon_s)
        erased = _erased_rows(settings, root)
        if erased is not None:
            out.print(f"rows of the audit log erased (keys deleted; accounted for above): {erased}", soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


def _print(result: Reconciliation, root: str, roles: dict[str, str], horizon_s: float) -> None:
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
    if result.ok:
        out.print("OK: every record is accounted for")
    elif result.only_undecided:
        out.print(
            f"NOT DECIDED YET: nothing is missing, but some records are still pending or open; a record is decided "
            f"once stream time passes its event time + window + grace ({horizon_s:g} s): run again later",
            soft_wrap=True,
        )
    else:
        out.print("UNACCOUNTED RECORDS FOUND")
