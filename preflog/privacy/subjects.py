"""Selecting by subject: the person a row is about, named by a raw id or a pseudonym, never stored raw.

A row's subject is its ``subject`` (a sealed row opened: the pseudonym its metadata states, else its data
key's), else its ``preflog.subject`` metadata value, else its ``context.user_id``: with privacy on that is a
pseudonym (``psn_...``), without it the raw user id. Selections, manifests and folder names hold a subject's
**label**, never a raw id: a pseudonym stays as it is; any other id becomes ``sub_`` and the first 32 hex
digits of its sha256 (:func:`label`, the same in SQL: :func:`label_sql`).

:func:`labels` turns what a person typed (raw ids, pseudonyms or labels) into the labels to match: a raw id
gives its label and, with the pseudonym secret (privacy on), its pseudonym, so it finds the person's rows
whether they were logged before or after privacy was switched on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import fields as f
from .pseudonym import is_pseudonym, pseudonym

__all__ = [
    "LABEL", "is_label", "keep_batches", "keep_subjects", "label", "label_sql", "labels", "row_subjects", "secret_of",
    "subject_mask",
]  # fmt: skip

#: the prefix of a label made from an id that is not a pseudonym
LABEL = "sub_"
_LABEL = re.compile(r"sub_[0-9a-f]{32}")


def label(subject: str) -> str:
    """The label of ``subject``: a pseudonym as it is, any other id ``sub_`` + 32 hex digits of its sha256."""
    if is_pseudonym(subject) or _LABEL.fullmatch(subject):
        return subject
    return LABEL + hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]


def is_label(text: str) -> bool:
    """Whether ``text`` is a pseudonym or a ``sub_`` label (what a selection may hold)."""
    return is_pseudonym(text) or bool(_LABEL.fullmatch(text))


def label_sql(expression: str) -> str:
    """DuckDB: the label of the text ``expression`` (as :func:`label`; NULL stays NULL; no brace: may be formatted)."""
    return (
        f"CASE WHEN length({expression}) = 36 AND regexp_full_match({expression}, '(psn_|sub_)[0-9a-f]+') "
        f"THEN {expression} "
        f"ELSE '{LABEL}' || substr(sha256({expression}), 1, 32) END"
    )


def secret_of(settings: Any = None) -> bytes | None:
    """The pseudonym secret of ``settings`` (the environment's by default) when privacy is on, else None."""
    from preflog.settings import load_settings

    from .keys import load_secret

    settings = settings or load_settings()
    return load_secret(settings) if settings.privacy.enabled else None


def labels(given: Iterable[str], secret: bytes | str | None = "auto") -> tuple[str, ...]:
    """The labels that select the subjects ``given`` (raw ids, pseudonyms or labels), sorted, once each.

    ``secret`` is the pseudonym secret (``"auto"``: the environment's settings', read only when a raw id is
    given; None: privacy off). A raw id gives its label and, with a secret, its pseudonym.

    Raises:
        ValueError: an empty id.
    """
    out: set[str] = set()
    for raw in given:
        subject = raw.strip()
        if not subject:
            raise ValueError("subject: an empty id; give a raw user id or its pseudonym (psn_...)")
        out.add(label(subject))
        if is_label(subject):
            continue
        if secret == "auto":
            secret = secret_of()
        if isinstance(secret, bytes):
            out.add(pseudonym(subject, secret))
    return tuple(sorted(out))


def _field(table: pa.Table, column: str, child: str) -> pa.Array | None:
    if column not in table.column_names:
        return None
    array = table.column(column).combine_chunks()
    return array.field(child) if pa.types.is_struct(array.type) else None


def _stated(table: pa.Table) -> pa.Array | None:
    """Each row's ``preflog.subject`` metadata value (null where none), or None for a table without metadata."""
    if "inference_metadata" not in table.column_names:
        return None
    metadata = table.column("inference_metadata").combine_chunks()
    if pa.types.is_map(metadata.type):
        return pc.map_lookup(metadata, f.SUBJECT, "first")
    values = [None if m is None else dict(m).get(f.SUBJECT) for m in metadata.to_pylist()]  # a map as a list
    return pa.array(values, pa.string())


def row_subjects(table: pa.Table) -> pa.Array:
    """The subject of each row of an audit-log table (opened or not): see the module's docstring."""
    found = [a for a in (
        table.column("subject").combine_chunks() if "subject" in table.column_names else None,
        _stated(table),
        _field(table, "context", "user_id"),
    ) if a is not None]  # fmt: skip
    if not found:
        return pa.nulls(table.num_rows, pa.string())
    return pc.coalesce(*found) if len(found) > 1 else found[0]


def subject_mask(table: pa.Table, selected: Sequence[str]) -> pa.Array:
    """Whether each row's subject's label is one of ``selected`` (labels, as :func:`labels` gives)."""
    subjects = row_subjects(table)
    unique = [s for s in pc.unique(subjects).to_pylist() if s is not None]
    wanted = set(selected)
    hits = pa.array([s for s in unique if label(s) in wanted], pa.string())
    return pc.fill_null(pc.is_in(subjects, value_set=hits), False)


def keep_subjects(table: pa.Table, selected: Sequence[str]) -> pa.Table:
    """The rows of ``table`` whose subject's label is one of ``selected`` (labels, as :func:`labels` gives)."""
    return table.filter(subject_mask(table, selected))


def keep_batches(batches: Iterable[pa.RecordBatch], selected: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """:func:`keep_subjects` of each batch, empty ones dropped (an export's stream, one batch at a time)."""
    for batch in batches:
        kept = keep_subjects(pa.Table.from_batches([batch]), selected)
        if kept.num_rows:
            yield from kept.combine_chunks().to_batches()
