"""Reading a conversation's turns from the audit log's ``turns`` table, to resolve histories (:mod:`.history`).

:func:`load_turns` reads the turns of a group of conversations from a DuckDB relation (with each turn's
consent and retention, :meth:`.history.Turn.refused`); :func:`resolve_table` gives an Arrow table's rows
(``read_pairs``, ``stream_pairs``) their whole histories; :func:`resolved_batches` does it batch by batch
for ``preflog export``, leaving out (and counting) rows whose history does not resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.fields import CONSENT, RETENTION

from .history import Turn, reason_of, resolve_rows

if TYPE_CHECKING:
    from preflog.dataset.consent import Purpose

__all__ = ["load_turns", "resolve_table", "resolved_batches"]

#: a relation's turns, read a group of conversations at a time (the columns resolving needs)
_TURNS = """
    SELECT request_id, conversation, prompt_messages{prompt},
           list_transform(candidates, lambda c: struct_pack("index" := c."index", text := c.text,
                                                            messages := c.messages)) AS candidates{erased},
           {consent} AS consent, {retention} AS retention_days, {time} AS event_time
    FROM {relation} WHERE {where}
"""


def load_turns(
    con: Any,
    relation: str | None,
    conversations: Sequence[str],
    opener: Callable[[pa.Table], pa.Table] | None = None,
) -> dict[str, Turn]:
    """The turns of ``conversations`` in DuckDB ``relation`` (None: no turns table), and every turn they refer to.

    A turn that refers to a request_id outside its conversation is looked up by that id once more, so a
    turn of another conversation reads as a mismatch, not as missing. ``opener`` opens sealed fields.
    """
    if relation is None or not conversations:
        return {}
    columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    erased = ", erased" if "erased" in columns else ""
    metadata = "inference_metadata" in columns
    consent = f"inference_metadata['{CONSENT}']" if metadata else "NULL::VARCHAR"
    if "subject_consent" in columns:  # a keyring's view: a turn stating none has its data key's
        consent = f"coalesce({consent}, subject_consent)"
    retention = f"inference_metadata['{RETENTION}']" if metadata else "NULL::VARCHAR"
    time = "event_time" if "event_time" in columns else "NULL::TIMESTAMPTZ"
    prompt = ", prompt" if opener is not None else ""  # an opener finds a row's data key (erased or not) from it
    found: dict[str, Turn] = {}
    wanted, by = list(conversations), "conversation.id"
    while wanted:
        con.register("__preflog_wanted", pa.table({"id": pa.array(wanted, pa.string())}))
        try:
            where = f"{by} IN (SELECT id FROM __preflog_wanted)"
            facts = {"consent": consent, "retention": retention, "time": time}
            query = _TURNS.format(prompt=prompt, erased=erased, relation=relation, where=where, **facts)
            table = con.sql(query).to_arrow_table()
        finally:
            con.unregister("__preflog_wanted")
        if opener is not None:
            table = opener(table)
        for row in table.to_pylist():
            found.setdefault(str(row["request_id"]), Turn.of(row))
        if by == "request_id":
            break
        referred = {t.previous for t in found.values() if t.previous is not None}
        wanted, by = sorted(referred - found.keys()), "request_id"
    return found


def resolve_table(
    rows: pa.Table,
    url: str,
    storage_options: dict[str, Any] | None = None,
    opener: Callable[[pa.Table], pa.Table] | None = None,
    group: int = 256,
    purpose: Purpose | None = None,
) -> pa.Table:
    """``rows`` (pairs or signals) with each by-reference turn's whole history, and ``history_problem``.

    Rows that are not turns given by reference are as they were; so is a table without any (it gets no new
    column). The turns are read from the log at ``url``, ``group`` conversations at a time, opened by ``opener``;
    ``purpose`` must allow each earlier turn (see the module's docstring).
    """
    if "conversation" not in rows.column_names or rows.num_rows == 0:
        return rows
    conv = rows.column("conversation").combine_chunks()
    previous = pc.struct_field(conv, "previous_request_id")
    where = pc.fill_null(pc.is_valid(previous), False)
    indices = pc.indices_nonzero(where).to_pylist()
    if not indices:
        return rows
    from .scan import connect, log_view

    con = connect()
    try:
        try:
            log_view(con, "turns", url, "turns", storage_options=storage_options)
            relation: str | None = "turns"
        except FileNotFoundError:
            relation = None  # no turn logged: every reference is missing
        picked = rows.select(["conversation", "prompt_messages"]).take(indices).to_pylist()
        by_conversation: dict[str, list[int]] = {}
        for i, row in enumerate(picked):
            by_conversation.setdefault(str(row["conversation"]["id"]), []).append(i)
        ids = sorted(by_conversation)
        resolved: list[tuple[Any, str | None]] = [(None, None)] * len(picked)
        for start in range(0, len(ids), group):
            chunk = ids[start : start + group]
            turns = load_turns(con, relation, chunk, opener)
            members = [i for c in chunk for i in by_conversation[c]]
            results = resolve_rows([picked[i] for i in members], turns, purpose)
            for i, result in zip(members, results, strict=True):
                resolved[i] = result
    finally:
        con.close()
    messages = rows.column("prompt_messages").combine_chunks()
    history = pa.array([r[0] for r in resolved], messages.type)
    order = pa.array(range(rows.num_rows), pa.int64()).to_numpy().copy()
    order[indices] = rows.num_rows + pa.array(range(len(indices)), pa.int64()).to_numpy()
    merged = pa.concat_arrays([messages, history]).take(pa.array(order))
    problems: list[str | None] = [None] * rows.num_rows
    for i, (_, problem) in zip(indices, resolved, strict=True):
        problems[i] = problem
    out = rows.set_column(rows.schema.get_field_index("prompt_messages"), rows.schema.field("prompt_messages"), merged)
    return out.append_column(pa.field("history_problem", pa.string()), pa.array(problems, pa.string()))


def resolved_batches(
    batches: Iterable[pa.RecordBatch],
    url: str,
    left_out: Counter[str],
    storage_options: dict[str, Any] | None = None,
    opener: Callable[[pa.Table], pa.Table] | None = None,
    purpose: Purpose | None = None,
) -> Iterator[pa.RecordBatch]:
    """``batches`` with whole histories (:func:`resolve_table`); rows whose history does not resolve are left out.

    They are counted in ``left_out`` as ``history: <reason>`` (as ``stream_pairs`` with a format counts them), and
    no batch has a ``history_problem`` column. Empty batches are dropped.
    """
    for batch in batches:
        rows = resolve_table(pa.Table.from_batches([batch]), url, storage_options, opener, purpose=purpose)
        if "history_problem" in rows.column_names:
            problems = rows.column("history_problem")
            for problem in problems.drop_null().to_pylist():
                left_out[f"history: {reason_of(problem)}"] += 1
            rows = rows.filter(pc.is_null(problems)).drop_columns(["history_problem"])
        for out in rows.combine_chunks().to_batches():
            if out.num_rows:
                yield out
