"""``preflog report``: what the logged preferences say, as one HTML file with the data beside it, and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..settings import Settings
from ..sinks.exceptions import MissingLogError
from .console import out, settings_of

if TYPE_CHECKING:
    from ..dataset.select import Selection
    from ..report.build import Report

__all__ = ["report", "write_report"]


def report(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Argument(help="Folder for report.html, summary.json and figures/ (default: <data-dir>/report)."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Audit log root (default: the sink's).")] = None,
    start: Annotated[str | None, typer.Option(help="First feedback date, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last feedback date, YYYY-MM-DD (inclusive).")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only requests served by these model names.")] = None,
    model_version: Annotated[
        list[str] | None, typer.Option(help="Only requests served by these model versions, e.g. 2026.11.")
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these source types, e.g. HUMAN_ANNOTATOR.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these feedback kinds, e.g. PAIRWISE.")] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants (repeatable).")] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option(help="Only these people's data: a raw user id or its pseudonym (psn_...), repeatable."),
    ] = None,
    min_per_subject: Annotated[
        int, typer.Option(help="Cohorts: the judgements a subject needs to be compared on its own with everyone else.")
    ] = 20,
    a: Annotated[
        str | None,
        typer.Option(
            "--a",
            help="A/B: the baseline, as name@version (default: the two versions of one model compared most "
            "often, the earlier one as A).",
        ),
    ] = None,
    b: Annotated[str | None, typer.Option("--b", help="A/B: the challenger, as name@version.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap rounds of the leaderboard's intervals.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (the same seed, the same intervals).")] = 0,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="The report's memory, e.g. 512MB, 2GB or 10% (of RAM): DuckDB gets it less 384 MiB (at most half) "
            "and spills to a temporary folder beyond that (default: PREFLOG_MEMORY_LIMIT, else an eighth of "
            "RAM, at most 1 GiB)."
        ),
    ] = None,
) -> None:
    """Analyse the audit log: leaderboard, A/B test, bias monitors, agreement, coverage and health.

    Writes one self-contained HTML file (charts inline, works offline) with every figure's data beside it
    as Parquet and JSON, and prints a summary. Bradley-Terry strengths and win rates use only pairs whose
    two answers come from different models or versions (arena-style requests).

    Example: preflog report --start 2026-11-01 --source HUMAN_ANNOTATOR --source END_USER
    Cohorts of people with 50 judgements or more: preflog report --min-per-subject 50
    """
    from ..dataset.select import Selection
    from .export import subject_labels

    if (a is None) != (b is None):
        raise typer.BadParameter("give both --a and --b (name@version each), or neither", param_hint="--a/--b")
    settings = settings_of(ctx)
    limit = _checked_limit(memory_limit or settings.memory_limit)
    selection = Selection(start=start, end=end, models=tuple(model or ()), model_versions=tuple(model_version or ()),
                          sources=tuple(source or ()),
                          kinds=tuple(kind or ()), tenants=tuple(tenant or ()),
                          subjects=subject_labels(subject, settings) if subject else ())  # fmt: skip
    if min_per_subject < 1:
        raise typer.BadParameter("at least 1", param_hint="--min-per-subject")
    try:
        write_report(settings, output or Path(settings.data_dir) / "report", selection, url, a, b, bootstrap, seed,
                     memory_limit=limit, min_per_subject=min_per_subject)  # fmt: skip
    except FileNotFoundError as exc:
        raise MissingLogError(str(exc)) from None


def _checked_limit(text: str | None) -> str | None:
    from ..sinks.scan import memory_limit

    try:
        memory_limit(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory-limit or PREFLOG_MEMORY_LIMIT") from None
    return text


def write_report(
    settings: Settings,
    folder: Path,
    selection: Selection | None = None,
    url: str | None = None,
    a: str | None = None,
    b: str | None = None,
    rounds: int = 200,
    seed: int = 0,
    memory_limit: str | None = None,
    min_per_subject: int = 20,
) -> None:
    """Write the report into ``folder`` and print its summary and path.

    The report's memory is ``memory_limit``, else ``settings.memory_limit``, else
    :data:`preflog.sinks.scan.DEFAULT_MEMORY` (DuckDB spilling to disk beyond its share).

    Rows whose consent does not allow analytics, whose retention ran out or whose subject was erased are left
    out and counted (``settings.privacy``: what unstated consent allows, and the keys of a sealed log).

    Raises:
        FileNotFoundError: the audit log has no pairs yet.
        SealedLogError: the log is sealed and ``settings`` hold no keys that open it (PREFLOG_PRIVACY__*).
    """
    from ..dataset.select import Selection
    from ..report.build import report as run_report

    with out.status("computing the report ..."):
        done = run_report(url or settings.audit_url(), folder, selection or Selection(), a=a, b=b, rounds=rounds,
                          seed=seed, storage_options=settings.sink.storage_options(),
                          memory_limit=memory_limit or settings.memory_limit, settings=settings,
                          min_per_subject=min_per_subject)  # fmt: skip
    _summary(done)
    out.print(f"report: {done.html.resolve()}", soft_wrap=True)
    figures = (done.folder / "figures").resolve()
    out.print(f"data: {figures} (Parquet and JSON per figure), summary.json", soft_wrap=True)


def _summary(done: Report) -> None:
    from ..report.privacy import said

    figures = {f.name: f for f in done.figures()}
    meta = done.meta
    out.print(f"[bold]{meta['pairs']:,} pairs[/bold] from {meta['from']} to {meta['to']}")
    left_out = said(meta.get("privacy"))
    if left_out:
        out.print(left_out, soft_wrap=True, markup=False)
    board = figures["leaderboard"]
    if not board.empty:
        table = Table(title="Leaderboard (Bradley-Terry, Elo scale)", box=SIMPLE_HEAD)
        for column in ("model", "strength", "95% interval", "elo", "pairs"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for r in board.table.to_pylist():
            table.add_row(r["model"], f"{r['strength']:.0f}", f"{r['low']:.0f} to {r['high']:.0f}", f"{r['elo']:.0f}",
                          str(r["wins"] + r["losses"]))  # fmt: skip
        out.print(table)
    ab = figures["ab"].summary
    if ab:
        verdict = "" if ab["decided"] else " [yellow](too small a sample to tell)[/yellow]"
        interval = f"95%: {ab['low']:.1%} to {ab['high']:.1%}, n={ab['n']}"
        out.print(f"A/B: {ab['b']} wins {ab['rate']:.1%} against {ab['a']} ({interval}; length-controlled "
                  f"{ab['length_controlled']:.1%}){verdict}", soft_wrap=True)  # fmt: skip
    rm = figures["rm_agreement"].summary
    if rm:
        out.print(f"reward model vs people: accuracy {rm['accuracy']:.1%}, kappa {rm['kappa']:.2f} "
                  f"({rm['comparisons']} comparisons)")  # fmt: skip
    humans = figures["human_agreement"].summary
    if humans:
        out.print(f"annotators: Krippendorff's alpha {humans['krippendorff_alpha']:.2f} over {humans['comparisons']} "
                  "comparisons")  # fmt: skip
    for flag in (flag for f in figures.values() for flag in f.flags):
        out.print(f"[yellow]flag:[/yellow] {flag}", soft_wrap=True)
