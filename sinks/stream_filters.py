"""What :mod:`.stream` keeps of each batch of rows: filters, sealed fields opened, and privacy's exclusions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.fields import CONSENT, RETENTION, allows, expired
from preflog.privacy.subjects import subject_mask
from preflog.schemas.tables import TABLES

from .export import FORMATS, openai_problem
from .history import reason_of
from .read import opened, turn_opener, without_maps
from .turns import resolve_table

__all__ = ["check_format", "formatted", "left_out", "select"]


def select(stream: Any, table: pa.Table) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """Each row of ``table``: its id, and the row as a dict (in ``stream.format``) or None.

    None where ``stream``'s filters leave the row out; positions still count it.
    """
    keep = pa.array([True] * table.num_rows)
    if stream.models:
        names = table.column("model").combine_chunks().field("name")
        keep = pc.and_(keep, pc.is_in(names, pa.array(stream.models)))
    if stream.sources:
        types = table.column("source").combine_chunks().field("type")
        keep = pc.and_(keep, pc.is_in(types, pa.array([s.upper() for s in stream.sources])))
    rows = opened(table, stream.table, stream.keys)
    if stream.subjects is not None:
        keep = pc.and_(keep, subject_mask(rows, stream.subjects))
    if stream.histories:  # whole histories of turns given by reference, each earlier turn allowing the purpose
        rows = resolve_table(
            rows, stream.url, stream.storage_options, turn_opener(stream.keys), purpose=_purpose(stream)
        )
        if "history_problem" not in rows.column_names and "conversation" in rows.column_names:  # every row: one shape
            rows = rows.append_column(pa.field("history_problem", pa.string()), pa.nulls(rows.num_rows, pa.string()))
    if stream.maps_as_lists:
        rows = without_maps(rows)
    id_column = TABLES[stream.table].id_column
    for wanted, pair in zip(keep.to_pylist(), rows.to_pylist(), strict=True):
        row_id = pair.get(id_column)
        reason = left_out(pair, stream.purpose, stream.unstated) if wanted and stream.purpose else None
        if wanted and reason is None and stream.format is not None:
            pair, reason = formatted(pair, stream.format)
        if reason is not None:
            stream.left_out[reason] += 1
        yield row_id, (pair if wanted and reason is None else None)


def _purpose(stream: Any) -> Any:
    """The stream's purpose (None: every row) as a build's, measured to now."""
    if not stream.purpose:
        return None
    from preflog.dataset.consent import Purpose

    return Purpose(stream.purpose, stream.unstated, now=datetime.now(timezone.utc))


def formatted(pair: dict[str, Any], fmt: str) -> tuple[dict[str, Any], str | None]:
    """``pair`` in training format ``fmt`` (as ``preflog export`` writes it), or why a build would leave it out.

    A turn whose history does not resolve is left out (``history: <reason>``), as a build leaves it out; an
    OpenAI row that breaks its rules, with the rule it breaks.
    """
    problem = pair.get("history_problem")
    if problem:
        return pair, f"history: {reason_of(problem)}"
    out = FORMATS[fmt][1](pair)
    broken = openai_problem(out) if fmt == "openai" else None
    return out, broken


def check_format(fmt: str | None, table: str) -> None:
    """Raise ValueError unless ``fmt`` is None or a format of ``table``'s rows."""
    if fmt is not None and FORMATS.get(fmt, ("",))[0] != table:
        fits = ", ".join(f for f, (t, _) in FORMATS.items() if t == table)
        raise ValueError(f"format {fmt!r} is not one of the {table} table's: {fits}")


def left_out(pair: dict[str, Any], purpose: str, unstated: tuple[str, ...]) -> str | None:
    """Why privacy leaves ``pair`` out of ``purpose`` (erased, no_consent, expired), as a build decides."""
    if pair.get("erased"):
        return "erased"
    inference, feedback = (_mapping(pair.get(k)) for k in ("inference_metadata", "feedback_metadata"))
    if not allows(inference, purpose, unstated) or (CONSENT in feedback and not allows(feedback, purpose, ())):
        return "no_consent"
    if expired(inference.get(RETENTION), pair.get("inference_time"), datetime.now(timezone.utc)):
        return "expired"
    return None


def _mapping(value: Any) -> dict[str, str]:
    """A metadata map as Arrow gives it to Python (a list of pairs) or as a dict."""
    if isinstance(value, dict):
        return value
    return dict(value or ())
