"""``preflog export``: the audit log as JSON lines for trainers (TRL, OpenAI, KTO), privacy applied."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Any

import typer

from ..sinks.exceptions import MissingLogError
from .audit import MemoryOption, memory_setting
from .console import out, progress_bar, settings_of

__all__ = ["export", "subject_labels"]


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
    subject: Annotated[
        list[str] | None,
        typer.Option(help="Only these people's rows: a raw user id or its pseudonym (psn_...), repeatable."),
    ] = None,
) -> None:
    """Export pairs (or, with --format kto, unpaired signals) to a training format as JSON lines.

    The rows read_pairs gives for the same filters, in its order, read and written batch by batch: a conversation
    turn given by reference with its whole history, as a build gives it (one whose history does not resolve, or
    continues a turn that does not allow training, is left out and counted by reason).
    An export is a training-set copy: rows whose consent does not allow training or whose retention ran out
    are left out and counted. A sealed log (privacy on) is opened with the keys of the PREFLOG_PRIVACY__*
    settings; rows of erased subjects are left out and counted, and the subjects written are recorded in
    OUTPUT.subjects.parquet and <data-dir>/privacy/exports.jsonl, so an erasure finds this copy.

    Example: preflog export train.jsonl --format trl --start 2026-11-01 --source HUMAN_ANNOTATOR
    One person's pairs: preflog export alice.jsonl --subject alice@example.org
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
    limit = memory_setting(memory, settings)
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
    kept = gate(rows)
    if subject:  # after the gate: a sealed row's subject is known once opened
        from ..privacy.subjects import keep_batches

        kept = keep_batches(kept, subject_labels(subject, settings))
    left_out: Counter[str] = Counter()
    kept = _histories(kept, root, options, gate, settings, left_out)
    # OpenAI takes only its own fields: the provenance goes beside, line for line, written in the same pass
    beside = output.removesuffix(".jsonl") + ".provenance.jsonl" if fmt == "openai" else None
    written_options = options if "://" in output else None
    subjects: set[str] = set()
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"exporting {fmt}", total=None)
            n = write_export(
                kept,
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
    if n == 0 and (start or end or model or source or subject):
        out.print(_what_is_there(root, table, options, limit), soft_wrap=True, markup=False, highlight=False)


def _histories(
    batches: Any, root: str, options: dict[str, Any], gate: Any, settings: Any, left_out: Counter[str]
) -> Any:
    """``batches`` with whole histories (:func:`preflog.sinks.turns.resolved_batches`), for training as the gate reads.

    The turns are opened with the gate's keyring (asked for only when a turn is sealed); rows whose history does
    not resolve are left out, counted in ``left_out`` as ``history: <reason>``.
    """
    from ..dataset.consent import Purpose
    from ..privacy.keyring import any_sealed, open_table
    from ..sinks.turns import resolved_batches

    def opener(turns: Any) -> Any:
        return open_table(turns, "turns", gate.keyring()) if any_sealed(turns) else turns

    purpose = Purpose(gate.purpose, gate.unstated, now=gate.now)
    return resolved_batches(batches, root, left_out, options, opener, purpose)


def subject_labels(given: list[str], settings: Any) -> tuple[str, ...]:
    """The labels of ``--subject`` values (a raw id's pseudonym with the settings' secret when privacy is on)."""
    from ..privacy.subjects import is_label, labels, secret_of

    try:
        raw = any(not is_label(g.strip()) for g in given)
        return labels(given, secret_of(settings) if raw else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--subject") from None


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
