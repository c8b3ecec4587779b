"""``preflog verify``, ``preflog export`` and ``preflog reconcile``: reading and checking the audit log."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..sinks.exceptions import MissingLogError
from .console import console, out, progress_bar, settings_of

if TYPE_CHECKING:  # the commands import Kafka clients only when they run
    from ..sinks.reconcile import Reconciliation

__all__ = ["export", "reconcile", "verify"]

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


def _memory(given: str | None, settings: Any) -> str | None:
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
    limit = _memory(memory, settings)
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


def export(
    ctx: typer.Context,
    output: Annotated[str, typer.Argument(help="Where to write JSON lines: a path or a URL (s3://...).")],
    fmt: Annotated[str, typer.Option("--format", help="trl, trl-conversational, openai or kto.")] = "trl",
    url: Annotated[str | None, typer.Option(help="Audit log root (default: the sink's).")] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (inclusive).")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these model names (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these source types, e.g. HUMAN_ANNOTATOR.")] = None,
    memory: MemoryOption = None,
) -> None:
    """Export pairs (or, with --format kto, unpaired signals) to a training format as JSON lines.

    The rows read_pairs gives for the same filters, in its order, read and written batch by batch.
    An export is a training-set copy: rows whose consent does not allow training or whose retention ran out
    are left out and counted. A sealed log (privacy on) is opened with the keys of the PREFLOG_PRIVACY__*
    settings; rows of erased subjects are left out and counted, and the subjects written are recorded in
    OUTPUT.subjects.parquet and <data-dir>/privacy/exports.jsonl, so an erasure finds this copy.

    Example: preflog export train.jsonl --format trl --start 2026-11-01 --source HUMAN_ANNOTATOR
    """
    from ..privacy.lineage import REGISTRY, record_export, subjects_path
    from ..sinks.export import FORMATS, PRIVACY_REASONS, PrivacyGate, write_export
    from ..sinks.filtered import Filters, iter_filtered
    from ..sinks.read import data_files
    from ..sinks.storage import Storage

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose one of {', '.join(FORMATS)}", param_hint="--format")
    for name, day in (("--start", start), ("--end", end)):
        if day is not None:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise typer.BadParameter(f"{day!r} is not a date; use YYYY-MM-DD", param_hint=name) from None
    settings = settings_of(ctx)
    limit = _memory(memory, settings)
    root = url or settings.audit_url()
    options = settings.sink.storage_options()
    table = FORMATS[fmt][0]
    try:
        files = data_files(Storage(root, options), table, root)
    except FileNotFoundError as exc:
        raise MissingLogError(str(exc)) from None
    rows = iter_filtered(root, table, Filters(start, end, model, source), options, files, limit=limit)
    # sealed fields are opened (or the export fails), and what privacy does not allow in a training set left out
    gate = PrivacyGate(table, lambda: _keyring(settings, root, table), settings.privacy.unstated_consent)
    # OpenAI takes only its own fields: the provenance goes beside, line for line, written in the same pass
    beside = output.removesuffix(".jsonl") + ".provenance.jsonl" if fmt == "openai" else None
    written_options = options if "://" in output else None
    left_out: Counter[str] = Counter()
    subjects: set[str] = set()
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"exporting {fmt}", total=None)
            n = write_export(
                gate(rows),
                fmt,
                output,
                beside,
                left_out=left_out,
                on_row=lambda: progress.advance(task),
                storage_options=written_options,
                subjects=subjects,
            )
    except BaseException:
        # a part of an opened log, and no record of it: nothing of it is left (nor the subjects file it replaced)
        if gate.sealed:
            _remove([output, *([beside] if beside else []), subjects_path(output)], written_options)
        raise
    out.print(f"wrote {n} {fmt} rows to {output}")
    if beside is not None:
        out.print(f"wrote the provenance of each row, line for line, to {beside}")
    for reason, count in left_out.most_common():
        out.print(f"  left out {count} row(s): {reason}", soft_wrap=True, markup=False, highlight=False)
    for reason, count in gate.left_out.items():
        if count:
            out.print(f"  {count} {PRIVACY_REASONS[reason]}", soft_wrap=True, markup=False, highlight=False)
    if gate.sealed:
        entry = record_export(settings.data_dir, output, subjects, n, written_options)
        out.print(
            f"the log is sealed: opened with the privacy keys; the {len(subjects)} subject(s) of this export are "
            f"in {entry['subjects']}, recorded in {settings.data_dir / REGISTRY}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if n == 0 and (start or end or model or source):
        out.print(_what_is_there(root, table, options, limit), soft_wrap=True, markup=False, highlight=False)


def _keyring(settings: Any, root: str, table: str) -> Any:
    """The keyring of ``settings`` for an export that met sealed fields; an error naming the fix without one."""
    from ..privacy.keyring import Keyring
    from ..privacy.keys import KeyError_

    p = settings.privacy
    if p.master_key is None and p.master_key_file is None:
        raise KeyError_(
            f"the {table} table of {root} holds sealed personal fields and no privacy settings are given to open "
            "them: set PREFLOG_PRIVACY__MASTER_KEY_FILE (the master key that wrapped the data keys) and "
            "PREFLOG_PRIVACY__KEYS_DIR or PREFLOG_PRIVACY__KEYS_TOPIC (where the data keys are), as the producers "
            "have them. Nothing was exported: an export never writes sealed values"
        )
    try:
        return Keyring.load(settings)
    except KeyError_ as exc:
        raise KeyError_(
            f"the {table} table of {root} holds sealed personal fields: {exc}. Nothing was exported"
        ) from None


def _remove(paths: list[str], storage_options: dict[str, Any] | None) -> None:
    """Delete what an export that failed had written so far (best effort: the failure is what gets reported)."""
    import fsspec

    for path in paths:
        try:
            fs, where = fsspec.core.url_to_fs(path, **(storage_options or {}))
            if fs.exists(where):
                fs.rm(where)
        except Exception:  # the export's own error is raised next
            pass


def _what_is_there(root: str, table: str, options: dict[str, Any], limit: str | None) -> str:
    """What the filters could have matched: the table's dates, model names and source types (DuckDB aggregates)."""
    from ..sinks.filtered import filter_values

    values = filter_values(root, table, options, limit)
    if values.rows == 0:
        return f"the {table} table is empty"
    return (
        f"no row matched the filters; the {table} table has dates {values.first} to {values.last}, "
        f"models {', '.join(values.models)}, sources {', '.join(values.sources)}"
    )


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
