"""The JSON-lines formats of a build, one converter per trainer, all from the same dataset row.

Every row keeps its provenance (pair_id, request_id, model, source, kind, margin,
scores, votes, weight) beside the trainer's own columns; trainers ignore extra
columns. The prompt is the same text in every format: the prompt messages'
contents (a system prompt included) joined by blank lines, or the prompt
field when there are no messages; the conversational formats keep the
messages as they are. OpenAI rows that break its rules are left out and
counted (:func:`preflog.sinks.export.openai_problem`); they carry only OpenAI's own
fields, and the build writes each written row's provenance, line for line, beside them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from preflog.sinks.export import FORMATS as EXPORTS
from preflog.sinks.export import openai_problem

__all__ = ["FORMATS", "convert", "prompt_text"]

Row = dict[str, Any]
PROVENANCE: tuple[str, ...] = ("pair_id", "request_id", "model", "model_version", "source", "kind", "margin")
PROVENANCE += ("chosen_score", "rejected_score", "votes", "weight")


def prompt_text(row: Row) -> str:
    """The prompt as one text: every prompt message's content (system prompt included), or the prompt field."""
    messages = row.get("prompt_messages") or []
    text: str = "\n\n".join(m["content"] for m in messages) if messages else row["prompt"]
    return text


def _trl(row: Row) -> Row:
    return {"prompt": prompt_text(row), "chosen": row["chosen"], "rejected": row["rejected"]}


def _nemo(row: Row) -> Row:
    out = {"prompt": prompt_text(row), "chosen_response": row["chosen"], "rejected_response": row["rejected"]}
    if row.get("chosen_score") is not None and row.get("rejected_score") is not None:
        out |= {"chosen_reward": row["chosen_score"], "rejected_reward": row["rejected_score"]}
    return out


#: format -> converter of a dataset row
FORMATS: dict[str, Callable[[Row], Row]] = {
    "trl": _trl,
    "trl-conversational": EXPORTS["trl-conversational"][1],  # the messages as they are, as preflog export
    "openai": EXPORTS["openai"][1],
    "nemo": _nemo,
}


def convert(row: Row, fmt: str, left_out: Counter[str]) -> Row | None:
    """``row`` in format ``fmt`` with its provenance, or None (reason counted in ``left_out``)."""
    out = FORMATS[fmt](row)
    if fmt == "openai" and (problem := openai_problem(out)) is not None:
        left_out[problem] += 1
        return None
    if fmt == "openai":  # kept to OpenAI's own fields; the build writes the provenance in a file beside it
        return out
    return out | {k: row.get(k) for k in PROVENANCE}
