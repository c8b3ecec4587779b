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

__all__ = ["FORMATS", "RECORDS", "convert", "prompt_text"]

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


def _provenance(*columns: str) -> Callable[[Row], Row]:
    return lambda row: {k: row.get(k) for k in columns}


_SIGNAL = ("request_id", "feedback_id", "model", "model_version", "source", "kind", "explicit")


def _kto(row: Row) -> Row:
    out = {"prompt": prompt_text(row), "completion": row["completion"], "label": bool(row["label"])}
    return out | _provenance("example_id", *_SIGNAL, "completion_model", "score")(row)


def _listwise(row: Row) -> Row:
    out = {"prompt": prompt_text(row), "chosen": row["chosen"], "rejected": row["rejected"]}
    out |= {"completions": row["completions"], "ranks": row["ranks"], "scores": row["scores"]}
    return out | _provenance(*_SIGNAL)(row)


def _tie(row: Row) -> Row:
    out = {"prompt": prompt_text(row), "completion_a": row["completion_a"], "completion_b": row["completion_b"]}
    return out | _provenance("relation", "tie_id", *_SIGNAL)(row)


#: record set -> converter of its rows (KTO examples, whole rankings, ties and both-bad answers)
RECORDS: dict[str, Callable[[Row], Row]] = {"kto": _kto, "listwise": _listwise, "ties": _tie}


def convert(row: Row, fmt: str, left_out: Counter[str]) -> Row | None:
    """``row`` in format ``fmt`` with its provenance, or None (reason counted in ``left_out``)."""
    out = FORMATS[fmt](row)
    if fmt == "openai" and (problem := openai_problem(out)) is not None:
        left_out[problem] += 1
        return None
    if fmt == "openai":  # kept to OpenAI's own fields; the build writes the provenance in a file beside it
        return out
    return out | {k: row.get(k) for k in PROVENANCE}
