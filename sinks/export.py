"""Export the audit log to training formats, as JSON lines.

* ``trl``: TRL's standard preference format, ``prompt`` / ``chosen`` / ``rejected`` text; the
  prompt is the prompt messages' text (a system prompt included, joined by blank lines), the
  same prompt ``trl-conversational`` and ``preflog dataset build`` give.
* ``trl-conversational``: the same with message lists (``[{"role", "content"}]``).
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

An export is a training-set copy. :class:`PrivacyGate` sits between the batches and the writer: it opens
sealed personal fields with the keyring (a sealed value is never written), and leaves out, counted by
reason (:data:`PRIVACY_REASONS`), rows whose subject was erased, rows whose consent does not allow
``training`` and rows past their retention. A log without privacy facts passes through unchanged. The
subjects of the rows written (``write_export(..., subjects=...)``) go to :mod:`preflog.privacy.lineage`,
so an erasure finds the copy.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.envelope import MARK, key_of
from preflog.privacy.fields import CONSENT, PURPOSES, RETENTION
from preflog.privacy.lineage import exports_holding

if TYPE_CHECKING:  # the keyring reads the keys topic: imported when a sealed batch is met
    from preflog.privacy.keyring import Keyring

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
    return own | provenance(row)


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
PRIVACY_REASONS: dict[str, str] = {
    "erased": "erased rows left out",
    "no_consent": "rows left out without training consent",
    "expired": "rows left out past their retention",
}


def _texts(array: pa.Array) -> pa.Array | None:
    """The texts a personal column holds: itself (text), its values (a map), its messages' contents (a list)."""
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return array
    if pa.types.is_map(t):
        return array.items
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type) and t.value_type.get_field_index("content") >= 0:
        return array.flatten().field("content")
    return None


def _loosened(table: pa.Table) -> pa.Table:
    """``table`` with its message lists' fields nullable: the log's are not, and an opened erased value is null."""
    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
            struct = t.value_type
            loose = pa.list_(pa.struct([struct.field(j).with_nullable(True) for j in range(struct.num_fields)]))
            if loose != t:
                table = table.set_column(i, field.with_type(loose), table.column(i).cast(loose))
    return table


def _allows(consent: str | None, purpose: str, unstated: Sequence[str]) -> bool:
    """:func:`preflog.privacy.fields.consent_sql` in Python: a comma list when stated, else ``unstated``."""
    return purpose in (unstated if consent is None else consent.split(","))


def _expired(days: str | None, at: datetime | None, now: datetime) -> bool:
    """:func:`preflog.privacy.fields.retention_sql` in Python: a value that is no number never expires."""
    if days is None or at is None:
        return False
    try:
        limit = float(days)
    except ValueError:
        return False
    return limit <= (now - at).total_seconds() / 86400.0


class PrivacyGate:
    """What privacy lets an export write, batch by batch: sealed fields opened, and the rows it must not write left out.

    A row is left out (counted in :attr:`left_out` by the first of :data:`PRIVACY_REASONS` that applies) when
    its subject's data key was erased, when its consent does not allow ``purpose`` (the inference's
    ``preflog.consent``, else its data key's, else ``unstated``; and the feedback's, when it states one), or
    when its retention ran out by ``now`` (the inference's ``preflog.retention_days`` from its time, else its
    data key's expiry). ``keyring`` (a :class:`~preflog.privacy.keyring.Keyring` or a function giving one) is
    asked for only when a batch holds sealed values; it raises when there is none, so a sealed value is never
    written. Opened batches carry ``subject`` (for the export's lineage); :attr:`sealed` says whether any did.
    """

    def __init__(
        self,
        table: str,
        keyring: Keyring | Callable[[], Keyring] | None,
        unstated: Sequence[str] = PURPOSES,
        now: datetime | None = None,
        purpose: str = "training",
    ) -> None:
        self.table = table
        self._keyring = keyring
        self.unstated = tuple(unstated)
        self.now = now or datetime.now(timezone.utc)
        self.purpose = purpose
        self.left_out: dict[str, int] = dict.fromkeys(PRIVACY_REASONS, 0)
        self.sealed = False

    def keyring(self) -> Keyring:
        """The keyring, loaded on first use (its loader's error when there is none)."""
        from preflog.privacy.keyring import Keyring
        from preflog.privacy.keys import KeyError_

        if isinstance(self._keyring, Keyring):
            return self._keyring
        if self._keyring is None:
            raise KeyError_(
                f"the {self.table} table holds sealed personal fields and no keyring was given to open them"
            )
        self._keyring = self._keyring()
        return self._keyring

    def holds_sealed(self, batch: pa.RecordBatch) -> bool:
        """Whether any personal field of ``batch`` is sealed."""
        from preflog.privacy.keyring import PERSONAL

        for name in PERSONAL.get(self.table, ()):
            if name not in batch.schema.names:
                continue
            texts = _texts(batch.column(name))
            if texts is not None and len(texts) and pc.any(pc.starts_with(texts, MARK)).as_py():
                return True
        return False

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches`` opened and with the rows privacy leaves out removed (empty batches are dropped)."""
        for batch in batches:
            out = self.batch(batch)
            if out.num_rows:
                yield out

    def batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """One batch opened, the rows privacy leaves out removed and counted."""
        from preflog.privacy.keyring import open_table

        n = batch.num_rows
        keys: list[Any] = [None] * n
        erased: list[bool] = [False] * n
        if n and self.holds_sealed(batch):
            self.sealed = True
            ring = self.keyring()
            ids = (
                [key_of(v) if v else None for v in batch.column("prompt").to_pylist()]
                if "prompt" in batch.schema.names
                else []
            )
            opened = open_table(_loosened(pa.Table.from_batches([batch])), self.table, ring)
            if ids:  # after opening: the keyring reads the keys again before it calls one missing
                keys = [ring.snapshot.keys.get(k) if k else None for k in ids]
            erased = opened.column("erased").to_pylist()
            batch = opened.drop_columns(["erased"]).combine_chunks().to_batches()[0]
        if not self._facts(batch, erased, keys):
            return batch  # nothing here says anything of consent, retention or erasure: every row is written
        inference = self._metadata(batch, "inference_metadata")
        feedback = self._metadata(batch, "feedback_metadata")
        times = batch.column("inference_time").to_pylist() if "inference_time" in batch.schema.names else [None] * n
        reasons = [self._reason(erased[i], inference[i], feedback[i], times[i], keys[i]) for i in range(n)]
        for reason in reasons:
            if reason is not None:
                self.left_out[reason] += 1
        return batch.filter(pa.array([reason is None for reason in reasons], pa.bool_()))

    def _facts(self, batch: pa.RecordBatch, erased: list[bool], keys: list[Any]) -> bool:
        """Whether any row of ``batch`` can be left out: erased, stating consent or retention, or a strict default."""
        if any(erased) or self.purpose not in self.unstated:
            return True
        if any(k is not None and (k.consent is not None or k.expires_ms is not None) for k in keys):
            return True
        for column in ("inference_metadata", "feedback_metadata"):
            if column in batch.schema.names:
                names = batch.column(column).keys
                if len(names) and pc.any(pc.is_in(names, value_set=pa.array([CONSENT, RETENTION]))).as_py():
                    return True
        return False

    def _reason(
        self, erased: bool, inference: dict[str, str], feedback: dict[str, str], at: datetime | None, key: Any
    ) -> str | None:
        """Why a row is left out (a key of :data:`PRIVACY_REASONS`), None when it is written."""
        if erased:
            return "erased"
        consent = inference.get(CONSENT)
        if consent is None and key is not None:
            consent = key.consent
        stated = feedback.get(CONSENT)
        if not (_allows(consent, self.purpose, self.unstated) and _allows(stated, self.purpose, PURPOSES)):
            return "no_consent"
        days = inference.get(RETENTION)
        if days is not None:
            return "expired" if _expired(days, at, self.now) else None
        if key is not None and key.expires_ms is not None and key.expires_ms <= self.now.timestamp() * 1000:
            return "expired"
        return None

    @staticmethod
    def _metadata(batch: pa.RecordBatch, column: str) -> list[dict[str, str]]:
        if column not in batch.schema.names:
            return [{}] * batch.num_rows
        return [dict(m) if m else {} for m in batch.column(column).to_pylist()]
