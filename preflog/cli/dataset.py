"""``preflog dataset build|list|show|verify|diff``: pinned, verifiable training sets from the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..errors import PreflogError
from ..sinks.exceptions import MissingLogError
from .console import out, settings_of

__all__ = ["dataset_app"]

dataset_app = typer.Typer(
    help="Training sets built from the audit log: immutable folders with a manifest (sources and their sha256, "
    "the selection, counts per split, a content hash) that `preflog dataset verify` rechecks.",
    no_args_is_help=True,
)

RootOption = Annotated[Path | None, typer.Option("--root", help="Datasets folder (default: <data-dir>/datasets).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON instead of tables.")]


def _root(ctx: typer.Context, root: Path | None) -> Path:
    return root or Path(settings_of(ctx).data_dir) / "datasets"


@dataset_app.command()
def build(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The build's name; a folder of that name must not exist yet.")],
    url: Annotated[str | None, typer.Option(help="Audit log root (default: the sink's).")] = None,
    root: RootOption = None,
    start: Annotated[str | None, typer.Option(help="First feedback date, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last feedback date, YYYY-MM-DD (inclusive).")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these model names (repeatable).")] = None,
    model_version: Annotated[
        list[str] | None, typer.Option(help="Only these versions of the serving model, e.g. 2026.11 (repeatable).")
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these source types, e.g. HUMAN_ANNOTATOR.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these feedback kinds, e.g. PAIRWISE.")] = None,
    explicit: Annotated[bool | None, typer.Option("--explicit/--implicit", help="Only explicit (or implicit).")] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants (repeatable).")] = None,
    min_margin: Annotated[float | None, typer.Option(help="Only pairs whose margin is at least this.")] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Only pairs whose chosen answer scored at least this (SCORES feedback).")
    ] = None,
    contradictions: Annotated[
        str, typer.Option(help="A over B and B over A for one prompt: majority (a tie drops both), drop, or keep.")
    ] = "majority",
    test_fraction: Annotated[float, typer.Option(help="Share of prompts in the test split.")] = 0.1,
    validation_fraction: Annotated[float, typer.Option(help="Share of prompts in the validation split.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Salt of the split and cap hashes (the same seed, the same rows).")] = 0,
    decontaminate: Annotated[
        Path | None,
        typer.Option(
            help="An evaluation file (JSON lines with 'prompt', or plain lines): drop pairs whose prompt "
            "matches one, or shares a word n-gram with one."
        ),
    ] = None,
    ngram: Annotated[int, typer.Option(help="The n-gram length of --decontaminate in words; 0: exact only.")] = 13,
    cap: Annotated[
        list[str] | None,
        typer.Option(
            help="At most N rows per value, e.g. --cap user_id=100 (model, model_version, source, kind, "
            "tenant, user_id; repeatable)."
        ),
    ] = None,
    kto_desirable: Annotated[
        float | None, typer.Option(help="KTO: a scored answer at or above this is a desirable example.")
    ] = None,
    kto_undesirable: Annotated[
        float | None, typer.Option(help="KTO: a scored answer at or below this is an undesirable example.")
    ] = None,
    kto_implicit: Annotated[
        bool, typer.Option(help="KTO: take implicit signals (clicks, copies) as labels too, not only explicit ones.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="A previous build with the same selection: read only the log's files added since it; "
            "the result is what a full build gives (every output is still rewritten)."
        ),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="Write only these outputs (repeatable): parquet (data/), trl, trl-conversational, openai, nemo, kto, "
            "listwise, ties. Default: all of them.",
        ),
    ] = None,
    compress: Annotated[
        str, typer.Option(help="JSON lines as they are (none) or gzip (.jsonl.gz, which datasets reads as it is).")
    ] = "none",
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Memory of the build, e.g. 512MB, 2GB or 10% (of RAM), at least 512MB; beyond it the build spills "
            "to disk beside it. Default: PREFLOG_MEMORY_LIMIT, else an eighth of RAM, at most 1 GiB."
        ),
    ] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option(help="Only these people's data: a raw user id or its pseudonym (psn_...), repeatable."),
    ] = None,
    per_subject: Annotated[
        bool,
        typer.Option(
            help="Also write each subject's pairs as a shard of its own (subjects/<subject>/), for "
            "personalised reward models; duplicates and contradictions are resolved within each subject."
        ),
    ] = False,
    min_per_subject: Annotated[
        int, typer.Option(help="--per-subject: the least pairs a subject needs for a shard (the others are counted).")
    ] = 1,
) -> None:
    """Build a training set: Parquet shards per split, JSON lines for TRL, OpenAI, NeMo and more, a card, a manifest.

    Formats: trl/ and trl-conversational/ (DPO), openai/, nemo/, kto/ (unpaired, behind a quality gate:
    explicit labels, and scores only beyond --kto-desirable/--kto-undesirable), listwise/ (a whole
    ranking, best first), ties/ (tied answers of a ranking and answers both rated undesirable).

    Exact duplicates of (prompt, chosen, rejected) become one row with their vote count; a prompt's
    pairs all land in one split, chosen by a hash of the normalised prompt, so a pair keeps its split
    when the set is rebuilt with more data.

    Any size of log: the build reads the log's files with DuckDB within --memory-limit, spilling to disk
    beyond it, and writes each output as it is produced. A large log takes a few copies of its text on
    disk: choose the formats you train on (--format) and compress them (--compress gzip).

    Example: preflog dataset build dpo-2026-11 --start 2026-11-01 --source HUMAN_ANNOTATOR --test-fraction 0.05
    Then, a week later: preflog dataset build dpo-2026-11b --since dpo-2026-11 --start 2026-11-01
    --source HUMAN_ANNOTATOR --test-fraction 0.05
    Only TRL's format, compressed: preflog dataset build dpo-small --format trl --compress gzip
    A shard per person with 50 pairs or more: preflog dataset build personal --per-subject --min-per-subject 50
    """
    from ..dataset.build import FORMATS, BuildError
    from ..dataset.build import build as run_build
    from ..dataset.select import Selection
    from .export import subject_labels

    settings = settings_of(ctx)
    try:
        caps = tuple((c.split("=", 1)[0], int(c.split("=", 1)[1])) for c in cap or ())
    except (IndexError, ValueError):
        raise typer.BadParameter(f"{cap}: write COLUMN=N, e.g. user_id=100", param_hint="--cap") from None
    try:
        selection = Selection(
            start=start, end=end, models=tuple(model or ()), model_versions=tuple(model_version or ()),
            sources=tuple(source or ()), kinds=tuple(kind or ()),
            explicit=explicit, tenants=tuple(tenant or ()), min_margin=min_margin, min_score=min_score,
            contradictions=contradictions,  # type: ignore[arg-type]
            test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed, caps=caps,
            decontaminate=str(decontaminate) if decontaminate else None, ngram=ngram,
            kto_desirable=kto_desirable, kto_undesirable=kto_undesirable, kto_implicit=kto_implicit,
            subjects=subject_labels(subject, settings) if subject else (), per_subject=per_subject,
            min_per_subject=min_per_subject,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    formats = tuple(fmt or FORMATS)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(FORMATS)}", param_hint="--format")
    if compress not in ("none", "gzip"):
        raise typer.BadParameter(f"{compress}: choose none or gzip", param_hint="--compress")
    target = _root(ctx, root)
    keyring = None
    if settings.privacy.enabled:  # a sealed log's fields are opened; a log that is not sealed reads as it is
        from ..privacy.keyring import reader_keyring

        keyring = reader_keyring(settings)
    try:
        with out.status(f"building {name} ...") as status:
            m = run_build(
                url or settings.audit_url(), target, name, selection, since=since,
                memory_limit=memory_limit or settings.memory_limit, formats=formats, compress=compress,
                on_step=lambda step: status.update(f"building {name}: {step} ..."),
                unstated_consent=tuple(settings.privacy.unstated_consent), keyring=keyring,
            )  # fmt: skip
    except BuildError as exc:
        raise MissingLogError(str(exc)) if "no pairs table" in str(exc) else PreflogError(str(exc)) from None
    except ValueError as exc:  # a memory limit that is not a size
        raise typer.BadParameter(str(exc), param_hint="--memory-limit") from None
    rows = ", ".join(f"{split} {n}" for split, n in m["rows"].items() if n)
    out.print(f"built {name} in {target / name}: {rows or 'no rows'}", soft_wrap=True)
    out.print(
        f"selected {m['pairs_selected']} pairs and {m['signals_selected']} signals from {len(m['sources'])} files; "
        f"merged {m['merged_duplicates']} exact "
        f"duplicates; {m['contradicted_rows']} rows had a contradicting pair ({contradictions}), "
        f"{m['contradictions_dropped']} pairs dropped for it",
        soft_wrap=True,
    )
    records = {r: sum(n.values()) for r, n in m["records"].items()}
    out.print(f"records: {records['kto']} KTO examples, {records['listwise']} rankings, {records['ties']} ties")
    if since:
        out.print(f"incremental: read only the log's files that {since} had not read", soft_wrap=True)
    if m["decontamination"]:
        d = m["decontamination"]["dropped"]
        out.print(f"decontamination dropped {d['exact']} exact and {d['ngram']} n-gram matches of {decontaminate}")
    privacy = {reason: n for reason, n in m.get("privacy", {}).items() if n}
    if privacy:
        said = ", ".join(f"{n} {reason}" for reason, n in privacy.items())
        out.print(f"left out for privacy (erasures, consent to training, retention): {said}", soft_wrap=True)
    for fmt, reasons in m["left_out"].items():
        for reason, n in reasons.items():
            out.print(f"  {fmt}: left out {n} row(s): {reason}", soft_wrap=True, markup=False)
    if "per_subject" in m:
        from ..dataset.subjects import card_lines

        out.print(card_lines(m)[0].removeprefix("- "), soft_wrap=True, markup=False)
    sizes = ", ".join(f"{folder} {_size(n)}" for folder, n in m["bytes"].items())
    out.print(f"bytes on disk: {sizes}", soft_wrap=True)
    out.print(f"content hash {m['content_hash']}")
    from ..privacy.erase import LINEAGE, record_build

    if (target / name / LINEAGE).exists():  # a sealed log's build: erase finds it wherever its root is
        record_build(Path(settings.data_dir), target / name)


def _size(n: int) -> str:
    """Bytes as people read them: 812 B, 12.4 kB, 3.1 MB, 40.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


@dataset_app.command("list")
def list_builds(ctx: typer.Context, root: RootOption = None) -> None:
    """The builds in the datasets folder, with their rows per split and content hash, and which were withdrawn."""
    from ..dataset.catalog import builds, withdrawal

    folder = _root(ctx, root)
    table = Table(box=SIMPLE_HEAD)
    for column in ("name", "built at", "train", "validation", "test", "content hash", "withdrawn"):
        table.add_column(column)
    for m in builds(folder):
        r = m["rows"]
        mark = withdrawal(folder / m["name"])  # an erasure deleted its data: the rows are what it had
        table.add_row(m["name"], m["built_at"], *(str(r.get(s, 0)) for s in ("train", "validation", "test")),
                      m["content_hash"][:16], "no" if mark is None else "yes")  # fmt: skip
    out.print(table)


@dataset_app.command()
def show(ctx: typer.Context, name: str, root: RootOption = None, as_json: JsonOption = False) -> None:
    """A build's manifest: counts, selection, outputs, sources, whether it was withdrawn (--json: the manifest)."""
    from ..dataset.catalog import manifest, withdrawal
    from .dataset_view import print_manifest

    try:
        m = manifest(_root(ctx, root), name)
    except FileNotFoundError as exc:
        raise PreflogError(str(exc)) from None
    print_manifest(out, m, as_json, withdrawal(_root(ctx, root) / name))


@dataset_app.command()
def verify(
    ctx: typer.Context,
    name: str,
    root: RootOption = None,
    sources: Annotated[bool, typer.Option(help="Also recheck the source files in the audit log.")] = True,
) -> None:
    """Recompute a build's file hashes and content hash (and its sources'); exit 1 if anything changed."""
    from ..dataset.catalog import verify as check_build

    try:
        from ..privacy.erase import receipts

        erasures = receipts(Path(settings_of(ctx).data_dir))
        check = check_build(_root(ctx, root), name, sources=sources, erasures=erasures)
    except FileNotFoundError as exc:
        raise PreflogError(str(exc)) from None
    for problem in check.problems:
        out.print(f"  problem: {problem}", soft_wrap=True, markup=False)
    for note in check.notes:
        out.print(f"  note: {note}", soft_wrap=True, markup=False)
    out.print("OK" if check.ok else "PROBLEMS FOUND")
    if not check.ok:
        raise typer.Exit(1)


@dataset_app.command()
def diff(ctx: typer.Context, first: str, second: str, root: RootOption = None, as_json: JsonOption = False) -> None:
    """What changed between two builds: selection, source files, rows per split, pairs added, removed or moved."""
    from ..dataset.catalog import diff as compare
    from .dataset_view import print_diff

    try:
        found = compare(_root(ctx, root), first, second)
    except FileNotFoundError as exc:
        raise PreflogError(str(exc)) from None
    print_diff(out, first, second, found, as_json)
