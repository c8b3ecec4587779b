"""A conversation turn's whole prompt history, resolved from the audit log's ``turns`` table.

A turn given by reference (``conversation.previous_request_id`` set) sends only the messages that follow
the previous turn's continued candidate. Its whole history is, turn by turn::

    full(turn) = full(previous) + continuation(previous, previous_candidate) + turn.prompt_messages
    full(turn without a previous turn) = turn.prompt_messages

where a continuation is the candidate's ``messages``, else (none, or an empty list) one assistant message
of its text. The processor stores every admitted turn in ``turns`` (:func:`preflog.processors.records.turn_record`),
judged or not, so a pair or signal of turn 5 finds turns 0 to 4 there.

A history that cannot be resolved is never cut short: the row keeps the messages it was sent with, and a
problem names why, by ids only (never a text), its reason first (:data:`REASONS`):
``missing_turn: turn <request_id> never reached the turns table``. Histories are memoised per request_id;
the turns are read a few hundred conversations at a time (``conversation.id IN (...)``; :mod:`.turns`), so
memory holds one group of conversations, never the table.

Privacy. A history copies earlier turns' texts, so each must allow what the row is read for. A turn's
consent is its ``preflog.consent`` (else, through a keyring's view, its data key's; else the purpose's
unstated consent) and its retention ``preflog.retention_days`` from its time, read as
:mod:`preflog.dataset.consent` reads a row's. Given a ``purpose`` (:class:`preflog.dataset.consent.Purpose`:
``training`` for a build and an export, ``stream_pairs``' own; ``read_pairs`` has none: it returns every
row), an earlier turn the purpose does not allow stops the history (``no_consent_turn``, ``expired_turn``);
an erased one always does (``erased_turn``: its texts are gone). These are history reasons, counted with
the others (a build's ``left_out.history``), and only for rows privacy keeps: a row left out for its own
facts (its own key erased, its own consent or retention) counts once, under privacy's ``erased``,
``no_consent`` or ``expired``. So a subject's erasure counts its rows as ``erased`` (its turns share its
keys); ``erased_turn`` counts rows that are not erased themselves but continue an erased turn (another
subject's, e.g. a turn sent without a user id, whose subject is its request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from preflog.privacy.fields import consent_allows, expired

if TYPE_CHECKING:
    from preflog.dataset.consent import Purpose

__all__ = [
    "REASONS",
    "Histories",
    "Turn",
    "continuation",
    "reason_of",
    "rendered",
    "resolve_rows",
]

Message = dict[str, Any]
#: why a history cannot be resolved, as the reason a problem starts with
REASONS: dict[str, str] = {
    "missing_turn": "a turn it refers to never reached the turns table",
    "missing_candidate": "the candidate it continues is not among its previous turn's candidates",
    "conversation_mismatch": "a turn it refers to belongs to another conversation",
    "cycle": "its previous turns refer back to one another",
    "erased_turn": "a turn it refers to was erased",
    "no_consent_turn": "a turn it refers to does not allow the purpose it is read for",
    "expired_turn": "a turn it refers to is past its retention",
}


def continuation(candidate: Mapping[str, Any]) -> list[Message]:
    """The messages a conversation continues with after ``candidate``: its messages, else its text as one."""
    if candidate.get("messages"):
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
    consent: str | None = None  # its ``preflog.consent`` (None: not stated)
    retention_days: str | None = None  # its ``preflog.retention_days`` (None: kept for ever)
    event_time: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Turn:
        """The turn of a turns-table row (a dict with the columns :func:`.turns.load_turns` reads)."""
        conv = row["conversation"] or {}
        return cls(
            request_id=str(row["request_id"]),
            conversation=str(conv.get("id")),
            previous=conv.get("previous_request_id"),
            candidate=conv.get("previous_candidate"),
            messages=list(row["prompt_messages"] or []),
            continuations={int(c["index"]): continuation(c) for c in row["candidates"] or []},
            erased=bool(row.get("erased")),
            consent=row.get("consent"),
            retention_days=row.get("retention_days"),
            event_time=row.get("event_time"),
        )

    def refused(self, purpose: Purpose | None) -> str | None:
        """Why ``purpose`` may not copy this turn's texts into a later turn's history (a problem), or None."""
        if self.erased:
            return f"erased_turn: turn {self.request_id} was erased"
        if purpose is not None and not consent_allows(self.consent, purpose.name, purpose.unstated):
            return f"no_consent_turn: turn {self.request_id} does not allow {purpose.name}"
        if purpose is not None and expired(self.retention_days, self.event_time, purpose.now):
            return f"expired_turn: turn {self.request_id} is past its retention"
        return None


class Histories:
    """Whole histories of the turns of ``turns`` (by request_id), memoised; ``purpose`` must allow earlier turns."""

    def __init__(self, turns: Mapping[str, Turn], purpose: Purpose | None = None) -> None:
        self.turns = turns
        self.purpose = purpose
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
        refused = turn.refused(self.purpose)
        if refused is not None:
            return refused
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


def resolve_rows(
    rows: Iterable[Mapping[str, Any]], turns: Mapping[str, Turn], purpose: Purpose | None = None
) -> list[tuple[Any, str | None]]:
    """Each row's whole history (of its ``conversation`` and ``prompt_messages``): (it, None) or (sent, problem)."""
    histories = Histories(turns, purpose)
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


def __getattr__(name: str) -> Any:
    """``load_turns`` and ``resolve_table``, which read the log, live in :mod:`.turns` (imported on first use)."""
    if name in ("load_turns", "resolve_table"):
        from . import turns

        return getattr(turns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
