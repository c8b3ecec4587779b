"""What a build compares to merge duplicates and find contradictions: each side's text, and its messages when rich.

A pair's prompt, chosen and rejected side are each hashed (md5, 128 bits) from their text. A side whose
messages carry anything beyond role and content (an image, a tool call, a tool result's id, a name), and a
prompt offered ``tools``, add a canonical JSON of those messages (images by their sha256, so one picture at two
addresses is one question) and of the tools. Two judgements of one question about different images, or two
trajectories ending in the same words but calling tools differently, are then different pairs. A plain text
side adds nothing: its hash, its grouping and a plain log's outputs are what they always were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import MESSAGE_COLUMNS, struct_fields
from .select import Selection, pair_where, split_of

__all__ = ["PLAIN_KEYS", "TextKeys", "contradictions_dropped", "dataset_rows", "grouped_rows", "text_keys"]


@dataclass(frozen=True)
class TextKeys:
    """The message fields beyond role and content of each message column, and whether the rows have ``tools``."""

    fields: tuple[tuple[str, frozenset[str]], ...] = ()  # (message column, its fields of name, tool_calls, ...)
    tools: bool = False

    def _rich(self, column: str) -> str:
        """SQL: a message of ``column`` carries more than role and content."""
        have = dict(self.fields).get(column, frozenset())
        checks = [
            f"len(coalesce(m.{f}, [])) > 0" if f in ("tool_calls", "images") else f"m.{f} IS NOT NULL"
            for f in sorted(have)
        ]
        return f"len(list_filter(coalesce({column}, []), lambda m: {' OR '.join(checks)})) > 0" if checks else "FALSE"

    def _json(self, column: str) -> str:
        """SQL: message ``column`` as canonical JSON (every field, in one order; empty lists null; images by sha256)."""
        have = dict(self.fields).get(column, frozenset())
        calls = "list_transform(m.tool_calls, lambda c: {'id': c.id, 'name': c.name, 'arguments': c.arguments})"
        pictures = "list_transform(m.images, lambda i: coalesce(i.sha256, i.uri))"
        values = {
            "name": "m.name",
            "tool_call_id": "m.tool_call_id",
            "tool_calls": f"CASE WHEN len(coalesce(m.tool_calls, [])) > 0 THEN {calls} END",
            "images": f"CASE WHEN len(coalesce(m.images, [])) > 0 THEN {pictures} END",
        }
        parts = ", ".join(f"'{f}': {values[f] if f in have else 'NULL'}" for f in values)
        each = f"{{'role': m.role, 'content': m.content, {parts}}}"
        return f"CAST(to_json(list_transform({column}, lambda m: {each})) AS VARCHAR)"

    def hashes(self) -> tuple[str, str, str]:
        """The SQL of the prompt's, the chosen's and the rejected's hash (``hp``, ``hc``, ``hr``)."""
        out = []
        for column, (_, text) in MESSAGE_COLUMNS.items():
            rich, messages = self._rich(column), self._json(column)
            if column == "prompt_messages" and self.tools:
                rich = f"({rich}) OR coalesce(tools, '') NOT IN ('', '[]')"
                messages = f"coalesce({messages}, '') || chr(30) || coalesce(tools, '')"
            if rich == "FALSE":
                out.append(f"md5_number({text})")
            else:  # a side of plain text adds nothing: its hash is its text's
                out.append(f"md5_number({text} || coalesce(CASE WHEN {rich} THEN chr(30) || {messages} END, ''))")
        return out[0], out[1], out[2]


#: the keys of a log whose messages are plain text: each side's text alone
PLAIN_KEYS = TextKeys()


def text_keys(con: Any, relation: str) -> TextKeys:
    """The keys of ``relation``'s rows, from its columns' types (a plain log's are :data:`PLAIN_KEYS`)."""
    described = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {relation}").fetchall()}
    fields = tuple((c, struct_fields(described[c])) for c in MESSAGE_COLUMNS if c in described)
    return TextKeys(tuple((c, f) for c, f in fields if f), "tools" in described)


def grouped_rows(
    chosen: str, s: Selection, subject: str | None = None, keys: TextKeys = PLAIN_KEYS
) -> tuple[str, list[Any]]:
    """The query of the groups of :func:`preflog.dataset.select.selected` pairs (relation ``chosen``, with ``__rid``).

    One narrow row per group of duplicates (the same prompt, chosen and rejected, :class:`TextKeys`): ``rid``
    (its first pair's), ``votes``, ``against`` (the votes of the group that says the opposite, or null),
    ``split``, and what caps order by. ``subject`` (an SQL expression over ``chosen``: a row's subject) groups
    and pairs only rows of the same value: two people who disagree do not contradict each other. A pair whose
    two sides are the same is no contradiction of itself.
    """
    where, args = pair_where(s)
    blank = "coalesce(pair_id, '') = ''"
    hp, hc, hr = keys.hashes()
    cap_columns = "".join(f", {column}" for column, _ in s.caps)
    hs = f", md5_number(coalesce({subject}, '')) AS hs" if subject else ""  # no subject: one group of its own
    by = "hs, " if subject else ""
    same = " AND o.hs = m.hs" if subject else ""
    query = f"""
        WITH keys AS (  -- the narrow rows: ids, order, the sides' hashes (texts only where the id is blank)
            SELECT __rid AS rid, pair_id, feedback_id, feedback_time, {split_of(s, "prompt_key")} AS split,
                   {hp} AS hp, {hc} AS hc, {hr} AS hr,
                   CASE WHEN {blank} THEN prompt END AS blank_prompt,
                   CASE WHEN {blank} THEN chosen END AS blank_chosen,
                   CASE WHEN {blank} THEN rejected END AS blank_rejected{cap_columns}{hs}
            FROM {chosen} WHERE {where}
        ),
        merged AS (  -- one row per (prompt, chosen, rejected): its first pair, and the votes
            SELECT * EXCLUDE (first) FROM (
                SELECT *, count(*) OVER sides AS votes,
                       row_number() OVER (sides ORDER BY pair_id, feedback_id, feedback_time) AS first
                FROM keys WINDOW sides AS (PARTITION BY {by}hp, hc, hr)
            ) WHERE first = 1
        )
        SELECT m.* EXCLUDE ({by}hp, hc, hr), o.votes AS against
        FROM merged m LEFT JOIN merged o ON o.hp = m.hp AND o.hc = m.hr AND o.hr = m.hc AND m.hc <> m.hr{same}
    """
    return query, args


def _keep(s: Selection) -> str:
    """The condition of a group the contradiction policy keeps."""
    return {"majority": "against IS NULL OR votes > against", "drop": "against IS NULL", "keep": "TRUE"}[
        s.contradictions
    ]


def dataset_rows(grouped: str, s: Selection) -> str:
    """The query of the kept rows of the groups of :func:`grouped_rows` (relation ``grouped``).

    Narrow rows only: ``rid``, ``votes``, ``opposing_votes``, ``weight``, ``split``; contradictions resolved by
    the policy, the caps applied (ranked on narrow columns). :func:`preflog.dataset.select.dataset_view` joins
    them back to their texts, read again from the log, never held.
    """
    kept = f"""SELECT rid, votes, coalesce(against, 0) AS opposing_votes,
                      votes / (votes + coalesce(against, 0)) AS weight, split
               FROM {grouped} WHERE {_keep(s)}"""
    if not s.caps:
        return kept
    order = f"md5('{s.seed}:' || pair_id), pair_id, blank_prompt, blank_chosen, blank_rejected"
    ranks = ", ".join(
        f"row_number() OVER (PARTITION BY {column} ORDER BY {order}) AS rank_{i}"
        for i, (column, _) in enumerate(s.caps)
    )
    within = " AND ".join(f"rank_{i} <= {int(n)}" for i, (_, n) in enumerate(s.caps))
    return f"""
        WITH kept AS ({kept}),
        capped AS (SELECT rid FROM (SELECT rid, {ranks} FROM {grouped} WHERE {_keep(s)}) WHERE {within})
        SELECT * FROM kept WHERE rid IN (SELECT rid FROM capped)
    """


def contradictions_dropped(grouped: str, s: Selection) -> str:
    """The query of how many pairs (every vote of a group) of relation ``grouped`` the contradiction policy drops."""
    return f"SELECT coalesce(sum(votes), 0) FROM {grouped} WHERE NOT ({_keep(s)})"
