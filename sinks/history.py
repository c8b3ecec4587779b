"""A conversation turn's whole prompt history, resolved from the audit log's ``turns`` table.

A turn given by reference (``conversation.previous_request_id`` set) sends only the messages that follow
the previous turn's continued candidate. Its whole history is, turn by turn::

    full(turn) = full(previous) + continuation(previous, previous_candidate) + turn.prompt_messages
    full(turn without a previous turn) = turn.prompt_messages

where a continuation is the candidate's ``messages``, or one assistant message of its text when it has
none. The processor stores every admitted turn in ``turns`` (:func:`preflog.processors.records.turn_record`),
judged or not, so a pair or signal of turn 5 finds turns 0 to 4 there.

A history that cannot be resolved is never cut short: the row keeps the messages it was sent with, and a
problem names why, by ids only (never a text), its reason first (:data:`REASONS`):
``missing_turn: turn <request_id> never reached the turns table``. Histories are memoised per request_id;
the turns are read a few hundred conversations at a time (``conversation.id IN (...)``, five columns), so
memory holds one group of conversations, never the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "REASONS",
    "Histories",
    "Turn",
    "continuation",
    "load_turns",
    "reason_of",
    "rendered",
    "resolve_rows",
    "resolve_table",
]

Message = dict[str, Any]
#: why a history cannot be resolved, as the reason a problem starts with
REASONS: dict[str, str] = {
    "missing_turn": "a turn it refers to never reached the turns table",
    "missing_candidate": "the candidate it continues is not among its previous turn's candidates",
    "conversation_mismatch": "a turn it refers to belongs to another conversation",
    "cycle": "its previous turns refer back to one another",
    "erased_turn": "a turn it refers to was erased",
}
#: a relation's turns, read a group of conversations at a time (the columns resolving needs)
_TURNS = """
    SELECT request_id, conversation, prompt_messages{prompt},
           list_transform(candidates, lambda c: struct_pack("index" := c."index", text := c.text,
                                                            messages := c.messages)) AS candidates{erased}
    FROM {relation} WHERE {where}
"""


def continuation(candidate: Mapping[str, Any]) -> list[Message]:
    """The messages a conversation continues with after ``candidate``: its messages, else its text as one."""
    if candidate.get("messages") is not None:
        return list(candidate["messages"])
    return [{"role": "assistant", "content": candidate.get("text")}]


@dataclass(frozen=True)
class Turn:
    """One row of the turns table, as resolving needs it."""

    request_id: str
    conversation: str
    previous: str | None
    candidate: int | None
    messages: list[Message]
    continuations: dict[int, list[Message]] = field(default_factory=dict)
    erased: bool = False

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Turn:
        """The turn of a turns-table row (a dict with the columns :func:`load_turns` reads)."""
        conv = row["conversation"] or {}
        return cls(
            request_id=str(row["request_id"]),
            conversation=str(conv.get("id")),
            previous=conv.get("previous_request_id"),
            candidate=conv.get("previous_candidate"),
            messages=list(row["prompt_messages"] or []),
            continuations={int(c["index"]): continuation(c) for c in row["candidates"] or []},
            erased=bool(row.get("erased")),
        )


class Histories:
    """Whole histories of the turns of ``turns`` (by request_id), memoised: each turn is resolved once."""

    def __init__(self, turns: Mapping[str, Turn]) -> None:
        self.turns = turns
        self._full: dict[str, list[Message] | str] = {}

    def full(self, request_id: str) -> list[Message] | str:
        """The whole history of turn ``request_id`` (its prompt), or the problem that stops it."""
        chain: list[Turn] = []  # from this turn back to the first one not yet resolved
        seen: set[str] = set()
        at = request_id
        while at not in self._full:
            turn = self.turns.get(at)
            if at in seen or turn is None:
                problem = f"cycle: turn {at} refers back to itself" if at in seen else _missing(at)
                for t in chain:
                    self._full[t.request_id] = problem
                return problem
            seen.add(at)
            chain.append(turn)
            if turn.previous is None:
                self._full[at] = list(turn.messages)
                chain.pop()
                break
            at = turn.previous
        for turn in reversed(chain):  # the earliest first: each extends its previous turn's history
            self._full[turn.request_id] = self.extend(turn.conversation, turn.previous, turn.candidate, turn.messages)
        return self._full[request_id]

    def extend(
        self, conversation: str, previous: str | None, candidate: int | None, messages: Sequence[Message] | None
    ) -> list[Message] | str:
        """The whole history of a turn of ``conversation`` that sent ``messages`` after ``previous``'s candidate."""
        if previous is None:
            return list(messages or [])
        turn = self.turns.get(previous)
        if turn is None:
            return _missing(previous)
        if turn.conversation != conversation:
            return f"conversation_mismatch: turn {previous} is of conversation {turn.conversation}, not {conversation}"
        if turn.erased:
            return f"erased_turn: turn {previous} was erased"
        if candidate not in turn.continuations:
            return f"missing_candidate: turn {previous} has no candidate {candidate}"
        before = self.full(previous)
        if isinstance(before, str):
            return before
        return before + turn.continuations[candidate] + list(messages or [])


def _missing(request_id: str) -> str:
    return f"missing_turn: turn {request_id} never reached the turns table"


def reason_of(problem: str) -> str:
    """The reason (a key of :data:`REASONS`) a problem starts with."""
    return problem.split(":", 1)[0]


def rendered(messages: Iterable[Mapping[str, Any]]) -> str:
    """A history as one text, ``role: content`` per line (the prompt the SDK derives from messages)."""
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def resolve_rows(rows: Iterable[Mapping[str, Any]], turns: Mapping[str, Turn]) -> list[tuple[Any, str | None]]:
    """Each row's whole history (of its ``conversation`` and ``prompt_messages``): (it, None) or (sent, problem)."""
    histories = Histories(turns)
    out: list[tuple[Any, str | None]] = []
    for row in rows:
        conv = row["conversation"]
        sent = row["prompt_messages"]
        if conv is None or conv.get("previous_request_id") is None:
            out.append((sent, None))
            continue
        full = histories.extend(str(conv["id"]), conv["previous_request_id"], conv.get("previous_candidate"), sent)
        out.append((sent, full) if isinstance(full, str) else (full, None))
    return out


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
    prompt = ", prompt" if opener is not None else ""  # an opener finds a row's data key (erased or not) from it
    found: dict[str, Turn] = {}
    wanted, by = list(conversations), "conversation.id"
    while wanted:
        con.register("__preflog_wanted", pa.table({"id": pa.array(wanted, pa.string())}))
        try:
            where = f"{by} IN (SELECT id FROM __preflog_wanted)"
            query = _TURNS.format(prompt=prompt, erased=erased, relation=relation, where=where)
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
) -> pa.Table:
    """``rows`` (pairs or signals) with each by-reference turn's whole history, and ``history_problem``.

    Rows that are not turns given by reference are as they were; so is a table without any (it gets no new
    column). The turns are read from the log at ``url``, ``group`` conversations at a time, opened by ``opener``.
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
            for i, result in zip(members, resolve_rows([picked[i] for i in members], turns), strict=True):
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
