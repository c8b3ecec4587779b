"""Export the audit log to training formats, as JSON lines.

* ``trl``: TRL's standard preference format, ``prompt`` / ``chosen`` / ``rejected`` text; the
  prompt is the prompt messages' text (a system prompt included, joined by blank lines), the
  same prompt ``trl-conversational`` and ``preflog dataset build`` give.
* ``trl-conversational``: the same with message lists (``[{"role", "content"}]``; tool calls, tool
  messages, ``tools`` and image parts with an ``images`` column in TRL's shape, as a build writes them).
* ``openai``: OpenAI preference fine-tuning, ``input.messages`` / ``preferred_output`` /
  ``non_preferred_output``. A row that breaks its rules (:func:`openai_problem`: each
  output exactly one assistant message with text, input messages of system, developer,
  user or assistant with text, two different outputs) is left out and counted, never
  written broken.
* ``kto``: TRL's unpaired format from the unpaired table, ``prompt`` / ``completion`` / ``label``.

Every row carries its provenance after the trainer's fields (pair_id or signal_id, request_id,
feedback_id, model, model_version, source, kind, and margin and scores or the signal's value);
trainers ignore extra columns. OpenAI's rows keep to its own fields: their provenance goes line
for line to a file beside them (``export_rows(..., beside=True)``, or :func:`write_export` in the same pass).

Rows come as an Arrow table or as record batches (:func:`preflog.sinks.filtered.iter_filtered`), converted
and written one batch at a time, so an export of the whole log holds one batch, never the table.

An export is a training-set copy: :class:`PrivacyGate` (:mod:`.export_gate`) sits between the batches
and the writer, opening sealed fields and leaving out erased, unconsented and expired rows, counted. The
subjects of the rows written (``write_export(..., subjects=...)``) go to :mod:`preflog.privacy.lineage`,
so an erasure finds the copy.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import fsspec
import pyarrow as pa

from preflog.privacy.lineage import exports_holding

from .export_gate import PRIVACY_REASONS, PrivacyGate

__all__ = [
    "FORMATS",
    "PRIVACY_REASONS",
    "PrivacyGate",
    "export_rows",
    "exports_holding",
    "openai_problem",
    "prompt_text",
    "provenance",
    "write_export",
    "write_jsonl",
]

Row = dict[str, Any]


def _message(m: Row, openai: bool = False, pictures_too: bool = True) -> Row:
    """One message as trainers take it, as a build writes it.

    Role and content, then what it has of name, tool calls (TRL: arguments parsed; OpenAI: as JSON text),
    tool_call_id and, for OpenAI's rules, images. For TRL a message with images has its content as parts:
    an image placeholder each, then the text.
    """
    out: Row = {"role": m["role"], "content": m["content"]}
    images = m.get("images") or []
    if images and not openai:  # an answer's parts are its text only: the images column holds the prompt's
        pictures = [{"type": "image"} for _ in images] if pictures_too else []
        out["content"] = [*pictures, {"type": "text", "text": m["content"]}]
    if m.get("name") is not None:
        out["name"] = m["name"]
    if m.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"] if openai else _parsed(c["arguments"])}}
            for c in m["tool_calls"]
        ]  # fmt: skip
    if m.get("tool_call_id") is not None:
        out["tool_call_id"] = m["tool_call_id"]
    if images and openai:
        out["images"] = images  # OpenAI's format takes text only: openai_problem leaves the row out
    return out


def _parsed(text: Any) -> Any:
    """JSON text as its value; text that does not parse stays text (never a failed export)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _prompt_messages(row: Row, openai: bool = False) -> list[Row]:
    messages = row.get("prompt_messages")
    if messages:
        return [_message(m, openai) for m in messages]
    return [{"role": "user", "content": row["prompt"]}]


def _answer(row: Row, prefix: str, openai: bool = False) -> list[Row]:
    messages = row.get(f"{prefix}_messages")
    if messages:
        return [_message(m, openai, pictures_too=False) for m in messages]
    return [{"role": "assistant", "content": row[prefix]}]


def _extras(row: Row) -> Row:
    """A row's tools (parsed) and the images of its prompt, when it has them (TRL's ``tools`` and ``images``)."""
    out: Row = {}
    if row.get("tools"):
        out["tools"] = _parsed(row["tools"])
    images = [i for m in row.get("prompt_messages") or [] for i in m.get("images") or []]
    if images:
        out["images"] = [{"path": i["uri"].removeprefix("file://")} for i in images]
    return out


def prompt_text(row: Row) -> str:
    """The prompt as one text: every prompt message's content (system prompt included), or the prompt field."""
    messages = row.get("prompt_messages") or []
    text: str = "\n\n".join(m["content"] for m in messages) if messages else row["prompt"]
    return text


def provenance(row: Row) -> Row:
    """Where a pair or signal of the audit log came from, as flat columns."""
    out = {"pair_id": row["pair_id"]} if "pair_id" in row else {"signal_id": row["signal_id"]}
    out |= {"request_id": row["request_id"], "feedback_id": row["feedback_id"]}
    out |= {"model": row["model"]["name"], "model_version": row["model"]["version"]}
    out |= {"source": row["source"]["type"], "kind": row["feedback_kind"], "explicit": row["explicit"]}
    if "pair_id" in row:
        return out | {k: row[k] for k in ("margin", "chosen_score", "rejected_score")}
    return out | {"value": row["value"], "signal": row["signal"]}


def _trl(row: Row) -> Row:
    return {"prompt": prompt_text(row), "chosen": row["chosen"], "rejected": row["rejected"]} | provenance(row)


def _trl_conversational(row: Row) -> Row:
    own = {"prompt": _prompt_messages(row), "chosen": _answer(row, "chosen"), "rejected": _answer(row, "rejected")}
    return own | _extras(row) | provenance(row)


def _openai(row: Row) -> Row:
    given: Row = {"messages": _prompt_messages(row, openai=True)}
    if row.get("tools"):
        given["tools"] = _parsed(row["tools"])
    return {
        "input": given,
        "preferred_output": _answer(row, "chosen", openai=True),
        "non_preferred_output": _answer(row, "rejected", openai=True),
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
        if m.get("images"):
            return "an input message has images (OpenAI's preference format takes text only)"
    for side in ("preferred_output", "non_preferred_output"):
        output = row[side]
        if len(output) != 1:
            return f"{side} has {len(output)} messages (exactly one assistant message is allowed)"
        if output[0]["role"] != "assistant":
            return f"{side} is a {output[0]['role']!r} message, not an assistant one"
        if not output[0]["content"] and not output[0].get("tool_calls"):  # a tool-calling answer may have none
            return f"{side} has no text"
        if output[0].get("images"):
            return f"{side} has images (OpenAI's preference format takes text only)"
    if row["preferred_output"] == row["non_preferred_output"]:
        return "the preferred and non-preferred outputs are the same"
    return None


def _kto(row: Row) -> Row:
    own = {"prompt": prompt_text(row), "completion": row["completion"], "label": bool(row["label"])}
    return own | provenance(row)


#: format -> (source table, row converter)
FORMATS: dict[str, tuple[str, Callable[[Row], Row]]] = {
    "trl": ("pairs", _trl),
    "trl-conversational": ("pairs", _trl_conversational),
    "openai": ("pairs", _openai),
    "kto": ("unpaired", _kto),
}


def _converted(
    rows: pa.Table | Iterable[pa.RecordBatch], fmt: str, batch_rows: int, left_out: Counter[str] | None
) -> Iterator[tuple[Row, Row]]:
    """(the row in ``fmt``, the log's row) for each row that would be written, one batch in Python at a time."""
    convert = FORMATS[fmt][1]
    batches = rows.to_batches(max_chunksize=batch_rows) if isinstance(rows, pa.Table) else rows
    for batch in batches:
        for row in batch.to_pylist():
            out = convert(row)
            if fmt == "openai" and (problem := openai_problem(out)) is not None:
                if left_out is not None:
                    left_out[problem] += 1
                continue
            yield out, row


def export_rows(
    rows: pa.Table | Iterable[pa.RecordBatch],
    fmt: str,
    batch_rows: int = 10_000,
    left_out: Counter[str] | None = None,
    beside: bool = False,
) -> Iterator[Row]:
    """Rows (a table or record batches) converted to ``fmt``; ``openai`` rows that break its rules go to ``left_out``.

    With ``beside``, the provenance of each row that would be written, in the same order (OpenAI's file beside).
    """
    for out, row in _converted(rows, fmt, batch_rows, left_out):
        yield provenance(row) if beside else out


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


def write_export(
    rows: pa.Table | Iterable[pa.RecordBatch],
    fmt: str,
    url: str,
    beside: str | None = None,
    left_out: Counter[str] | None = None,
    on_row: Callable[[], None] | None = None,
    storage_options: dict[str, Any] | None = None,
    subjects: set[str] | None = None,
) -> int:
    """Rows converted to ``fmt`` as JSON lines at ``url``, in one pass; the count written.

    With ``beside``, the provenance of each written row goes line for line to that file too (OpenAI's layout),
    byte for byte what :func:`write_jsonl` of ``export_rows(..., beside=True)`` writes. ``subjects`` collects
    the ``subject`` of each row written (rows a :class:`PrivacyGate` opened have one); it is never written.
    """
    n, options = 0, storage_options or {}
    with ExitStack() as files:
        f = files.enter_context(fsspec.open(url, "w", encoding="utf-8", **options))
        g = files.enter_context(fsspec.open(beside, "w", encoding="utf-8", **options)) if beside else None
        for out, row in _converted(rows, fmt, 10_000, left_out):
            f.write(json.dumps(out, ensure_ascii=False) + "\n")
            if g is not None:
                g.write(json.dumps(provenance(row), ensure_ascii=False) + "\n")
            if subjects is not None and row.get("subject"):
                subjects.add(row["subject"])
            n += 1
            if on_row:
                on_row()
    return n


#: why an export leaves a row out for privacy, checked in this order (the first that applies counts), as said
