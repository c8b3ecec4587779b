"""Per-subject data in a build: selecting subjects, and a shard of each subject's pairs (``--per-subject``).

A row's subject (:mod:`preflog.privacy.subjects`) is its ``subject`` in a sealed log (the pseudonym its data
is about), else its ``context.user_id``. A selection names subjects by their labels (pseudonyms, or ``sub_``
and a sha256 of a raw id), never by a raw id, so neither the manifest nor a folder name holds one.

``per_subject`` writes, beside the build's outputs, one Parquet shard per split of each subject with at
least ``min_per_subject`` rows: ``subjects/{label}/{split}-00000-of-00001.parquet`` (the columns of
``data/``, their messages shaped alike). Duplicates are merged and contradictions resolved within each subject
(two people who disagree are the signal a personalised reward model learns, not noise), in rows of their own
(``subject_rows``): the build's other outputs merge and resolve across subjects, as they do without
``per_subject``. The splits are the build's: a prompt's
split is a hash of the prompt, so a subject's splits never share a prompt and no subject trains on a prompt
that another subject's shard, or the whole set, holds out. The manifest's ``per_subject`` counts each
shard's rows, and the subjects (and rows) below the minimum and the rows without a subject, which stay in
the build's other outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.subjects import is_label, label_sql

from .messages import Shape, as_json_types, shape_of, shard_select
from .shards import ParquetOut, rows_per_group

__all__ = [
    "SUBJECTS", "card_lines", "check_subjects", "config_of", "log_subject_sql", "row_subject_sql", "subject_filter",
    "write_subject_shards",
]  # fmt: skip

#: the folder of the per-subject shards in a build
SUBJECTS = "subjects"
_DEFAULTS = {"subjects": (), "per_subject": False, "min_per_subject": 1}


def check_subjects(s: Any) -> None:
    """Raise ValueError when selection ``s`` names a subject by anything but a label, or a minimum below 1."""
    raw = [i for i, subject in enumerate(s.subjects) if not is_label(subject)]
    if raw:
        raise ValueError(
            f"subjects {raw}: not a pseudonym (psn_...) nor a label (sub_...); turn raw ids into labels with "
            "preflog.privacy.subjects.labels (a selection never holds a raw id)"
        )
    if s.min_per_subject < 1:
        raise ValueError(f"min_per_subject={s.min_per_subject}: a subject's shard needs at least 1 row")


def config_of(config: dict[str, Any]) -> dict[str, Any]:
    """A build's selection as the manifest records it: the subject fields only when set (older builds' hashes hold)."""
    return {k: v for k, v in config.items() if k not in _DEFAULTS or v != _DEFAULTS[k]}


def log_subject_sql(table: str, sealed: bool) -> str:
    """SQL of a row's subject in the log's ``table`` as a build reads it (a keyring's view when ``sealed``)."""
    return "coalesce(subject, context.user_id)" if sealed else "context.user_id"


def row_subject_sql(sealed: bool) -> str:
    """SQL of a row's subject in a build's selected rows (``user_id``, and ``subject`` when ``sealed``)."""
    return "coalesce(subject, user_id)" if sealed else "user_id"


def subject_filter(s: Any, subject: str | None, args: list[Any]) -> list[str]:
    """The condition of selection ``s``'s subjects over the SQL ``subject`` (its labels appended to ``args``)."""
    if not s.subjects:
        return []
    if subject is None:
        raise ValueError("the selection names subjects: give the SQL of a row's subject")
    args.extend(s.subjects)
    return [f"coalesce({label_sql(subject)} IN ({', '.join('?' for _ in s.subjects)}), false)"]


def write_subject_shards(
    out: Any,
    folder: Path,
    minimum: int,
    sealed: bool,
    splits: tuple[str, ...],
    row_keys: list[str],
    shape: Shape,
    rows: str = "subject_rows",
) -> tuple[list[tuple[Path, int]], dict[str, Any]]:
    """The shards of every subject with at least ``minimum`` of the build's ``rows``; their files, and counts.

    ``out`` is the build's sorted reader (``out.con``, ``out.batches``); the rows are read once, sorted by
    subject, and each subject's files are closed before the next one's open. Their messages are shaped as
    ``data/``'s (``shape``, widened if these rows hold tool calls, tools or images that ``data/``'s do not).
    """
    con = out.con
    own = shape_of(con, rows)
    shape = Shape(
        shape.fields | own.fields, shape.rich or own.rich, shape.tools or own.tools, shape.images or own.images
    )
    subject = label_sql(row_subject_sql(sealed))
    con.execute(f"CREATE TEMP VIEW labelled AS SELECT *, {subject} AS __subject FROM {rows}")
    counted = con.execute(
        "SELECT __subject, split, count(*) FROM labelled WHERE __subject IS NOT NULL GROUP BY ALL"
    ).fetchall()
    per: dict[str, dict[str, int]] = {}
    for who, split, n in counted:
        per.setdefault(who, dict.fromkeys(splits, 0))[split] = int(n)
    kept = {who: n for who, n in per.items() if sum(n.values()) >= minimum}
    below = [sum(n.values()) for who, n in per.items() if who not in kept]
    without = int(con.execute("SELECT count(*) FROM labelled WHERE __subject IS NULL").fetchall()[0][0])
    summary = {
        "min_per_subject": minimum,
        "subjects": dict(sorted(kept.items())),
        "below_minimum": {"subjects": len(below), "rows": sum(below)},
        "without_subject": without,
    }
    if not kept:
        return [], summary
    con.execute("CREATE TEMP TABLE shard_subjects AS SELECT UNNEST(?::VARCHAR[]) AS s", [sorted(kept)])
    con.execute("CREATE TEMP VIEW shard_rows AS SELECT * FROM labelled WHERE __subject IN (FROM shard_subjects)")
    group = rows_per_group(con, "shard_rows", ("prompt", "chosen", "rejected"))
    files: list[tuple[Path, int]] = []
    current: str | None = None
    shards: dict[str, ParquetOut] = {}

    def close() -> None:
        for shard in shards.values():
            if shard.close():
                files.append((shard.path, shard.rows))

    for batch in out.batches("shard_rows", shard_select(shape), ["__subject", *row_keys]):
        labels = batch.column("__subject")
        for who in pc.unique(labels).to_pylist():
            if who != current:
                close()
                current = who
                where = folder / SUBJECTS / who
                shards = {
                    s: ParquetOut(where / f"{s}-00000-of-00001.parquet", group, compression="zstd") for s in splits
                }
            part = batch.filter(pc.equal(labels, pa.scalar(who, pa.string())))
            for split, shard in shards.items():
                rows_of = part.filter(pc.equal(part.column("split"), split)).drop_columns(["split", "__subject"])
                shard.write(as_json_types(rows_of, shape))
    close()
    return files, summary


def card_lines(manifest: dict[str, Any]) -> list[str]:
    """The card's lines of a per-subject build (none for another build)."""
    m = manifest.get("per_subject")
    if m is None:
        return []
    below, shards = m["below_minimum"], m["subjects"]
    return [
        f"- per-subject shards (`{SUBJECTS}/<subject>/<split>-00000-of-00001.parquet`, subjects by pseudonym or "
        f"`sub_` label): {len(shards)} subjects with at least {m['min_per_subject']} rows, "
        f"{sum(sum(n.values()) for n in shards.values())} rows; below the minimum (no shard, their rows in the "
        f"other outputs): {below['subjects']} subjects, {below['rows']} rows; rows without a subject: "
        f"{m['without_subject']}; duplicates and contradictions resolved within each subject, splits by prompt"
    ]
