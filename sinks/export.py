"""Export the audit log to training formats, as JSON lines.

* ``trl``: TRL's standard preference format, ``prompt`` / ``chosen`` / ``rejected`` text.
* ``trl-conversational``: the same with message lists (``[{"role", "content"}]``).
* ``openai``: OpenAI preference fine-tuning, ``input.messages`` / ``preferred_output`` /
  ``non_preferred_output``. A row that breaks its rules (:func:`openai_problem`: each
  output exactly one assistant message with text, input messages of system, developer,
  user or assistant with text, two different outputs) is left out and counted, never
  written broken.
* ``kto``: TRL's unpaired format from the unpaired table, ``prompt`` / ``completion`` / ``label``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pyarrow as pa

__all__ = ["FORMATS", "export_rows", "openai_problem", "write_jsonl"]

Row = dict[str, Any]


def _prompt_messages(row: Row) -> list[dict[str, str]]:
    messages = row.get("prompt_messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return [{"role": "user", "content": row["prompt"]}]


def _answer(row: Row, prefix: str) -> list[dict[str, str]]:
    messages = row.get(f"{prefix}_messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return [{"role": "assistant", "content": row[prefix]}]


def _trl(row: Row) -> Row:
    return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}


def _trl_conversational(row: Row) -> Row:
    return {"prompt": _prompt_messages(row), "chosen": _answer(row, "chosen"), "rejected": _answer(row, "rejected")}


def _openai(row: Row) -> Row:
    return {
        "input": {"messages": _prompt_messages(row)},
        "preferred_output": _answer(row, "chosen"),
        "non_preferred_output": _answer(row, "rejected"),
    }


_OPENAI_INPUT_ROLES = {"system", "developer", "user", "assistant"}


def openai_problem(row: Row) -> str | None:
    """Why an ``openai`` row breaks OpenAI's preference format, or None when it keeps every rule."""
    messages = row["input"]["messages"]
    if not messages:
        return "no input messages"
    for m in messages:
        if m["role"] not in _OPENAI_INPUT_ROLES:
            return f"an input message has role {m['role']!r} (only text roles are taken)"
        if not isinstance(m["content"], str) or not m["content"]:
            return "an input message has no text"
    for side in ("preferred_output", "non_preferred_output"):
        output = row[side]
        if len(output) != 1:
            return f"{side} has {len(output)} messages (exactly one assistant message is allowed)"
        if output[0]["role"] != "assistant":
            return f"{side} is a {output[0]['role']!r} message, not an assistant one"
        if not output[0]["content"]:
            return f"{side} has no text"
    if row["preferred_output"] == row["non_preferred_output"]:
        return "the preferred and non-preferred outputs are the same"
    return None


def _kto(row: Row) -> Row:
    return {"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])}


#: format -> (source table, row converter)
FORMATS: dict[str, tuple[str, Callable[[Row], Row]]] = {
    "trl": ("pairs", _trl),
    "trl-conversational": ("pairs", _trl_conversational),
    "openai": ("pairs", _openai),
    "kto": ("unpaired", _kto),
}


def export_rows(
    table: pa.Table, fmt: str, batch_rows: int = 10_000, left_out: Counter[str] | None = None
) -> Iterator[Row]:
    """Rows of ``table`` converted to ``fmt``; ``openai`` rows that break its rules go to ``left_out`` by reason."""
    convert = FORMATS[fmt][1]
    for batch in table.to_batches(max_chunksize=batch_rows):
        for row in batch.to_pylist():
            out = convert(row)
            if fmt == "openai" and (problem := openai_problem(out)) is not None:
                if left_out is not None:
                    left_out[problem] += 1
                continue
            yield out


def write_jsonl(
    rows: Iterator[Row],
    url: str,
    on_row: Callable[[], None] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Write rows as JSON lines to a path or any fsspec URL; returns the count."""
    n = 0
    with fsspec.open(url, "w", encoding="utf-8", **(storage_options or {})) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
            if on_row:
                on_row()
    return n
