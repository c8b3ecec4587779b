"""A build's conversation turns with their whole prompt history (:mod:`preflog.sinks.history`).

A pair or signal of a turn given by reference holds only the messages that turn sent. Before a build
selects anything, :func:`resolve_view` gives each such row its whole history, from the log's ``turns``
table, as ``prompt_messages``, and as ``prompt`` the same history in one text (``role: content`` lines,
the prompt the SDK derives from messages), so that splits, duplicates and every format see the whole
conversation so far. A row whose history cannot be resolved is left out, never cut short, and counted
by reason (a key of :data:`preflog.sinks.history.REASONS`; the manifest's ``left_out.history``). With the
build's purpose (``training``), every earlier turn must allow it (``no_consent_turn``, ``expired_turn``;
an erased one: ``erased_turn``). Rows the purpose leaves out for their own facts are not resolved here:
the privacy step leaves them out and counts them (``erased``, ``no_consent``, ``expired``), once.

The rows are read a group of conversations at a time (ids, conversation and messages of the turns given
by reference only), with the turns of those conversations; what is resolved goes into a table of the
build's database, joined back to the rows by ``__rid``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from preflog.sinks.history import rendered, resolve_rows
from preflog.sinks.scan import log_view
from preflog.sinks.turns import load_turns

from .consent import Purpose, privacy_columns
from .select import Selection, judgement_filter
from .subjects import log_subject_sql

__all__ = ["resolve_view"]

_REFERS = "conversation.previous_request_id IS NOT NULL"


def resolve_view(
    con: Any,
    name: str,
    log_url: str,
    table: str,
    selection: Selection,
    keyring: Any = None,
    group: int = 256,
    purpose: Purpose | None = None,
) -> dict[str, int]:
    """Make view ``name`` (rows of log ``table`` with ``__rid``) give whole histories; the rows left out, by reason.

    Only rows the judgement-level selection takes are counted (the others are not the build's). A view
    without a turn given by reference is left as it was. ``keyring`` opens a sealed log's turns (its view's
    rows are opened: ``erased``, ``subject_consent``). With ``purpose``, earlier turns must allow it, and rows
    it leaves out for their own facts stay as they are, for the privacy step to leave out and count.
    """
    columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()}
    if "conversation" not in columns or con.execute(f"SELECT 1 FROM {name} WHERE {_REFERS} LIMIT 1").fetchone() is None:
        return {}
    source, history = f"{name}__unresolved", f"{name}__history"
    con.execute(f"ALTER VIEW {name} RENAME TO {source}")
    try:
        log_view(con, f"{name}__turns", log_url, "turns", keyring=keyring)
        turns: str | None = f"{name}__turns"
    except FileNotFoundError:
        turns = None  # no turn logged: every reference is missing
    empty = f"SELECT __rid, prompt, prompt_messages, NULL::VARCHAR AS problem FROM {source} LIMIT 0"
    con.execute(f"CREATE TABLE {history} AS {empty}")
    kind = con.sql(f"SELECT prompt_messages FROM {history}").to_arrow_table().schema.field(0).type
    ids = [
        str(r[0])
        for r in con.execute(f"SELECT DISTINCT conversation.id FROM {source} WHERE {_REFERS} ORDER BY 1").fetchall()
    ]
    facts, own = "", "NULL"  # why privacy leaves a row out for its own facts (privacy's to count): not resolved
    if purpose is not None:
        pairs = table == "pairs"
        facts = ", " + privacy_columns(
            "inference_metadata" if pairs else None, "feedback_metadata" if pairs else None, keyring is not None
        )
        own = purpose.reason(erased="erased" if keyring is not None else "false")
    for start in range(0, len(ids), group):
        chunk = ids[start : start + group]
        con.register("__preflog_conversations", pa.table({"id": pa.array(chunk, pa.string())}))
        try:
            rows = con.sql(
                f"""SELECT __rid, conversation, prompt_messages FROM (
                        SELECT __rid, conversation, prompt_messages{facts} FROM {source}
                        WHERE {_REFERS} AND conversation.id IN (SELECT id FROM __preflog_conversations))
                    WHERE ({own}) IS NULL"""
            ).to_arrow_table()
        finally:
            con.unregister("__preflog_conversations")
        results = resolve_rows(
            rows.select(["conversation", "prompt_messages"]).to_pylist(), load_turns(con, turns, chunk), purpose
        )
        resolved = pa.table({
            "__rid": rows.column("__rid"),
            "prompt": pa.array([None if p else rendered(m) for m, p in results], pa.string()),
            "prompt_messages": pa.array([m for m, _ in results], kind),
            "problem": pa.array([p for _, p in results], pa.string()),
        })  # fmt: skip
        con.register("__preflog_resolved", resolved)
        con.execute(f"INSERT INTO {history} SELECT * FROM __preflog_resolved")
        con.unregister("__preflog_resolved")
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name} AS
            SELECT u.* REPLACE (
                CASE WHEN h.__rid IS NULL OR u.prompt IS NULL THEN u.prompt ELSE h.prompt END AS prompt,
                CASE WHEN h.__rid IS NULL THEN u.prompt_messages ELSE h.prompt_messages END AS prompt_messages)
            FROM {source} u LEFT JOIN {history} h ON h.__rid = u.__rid
            WHERE h.problem IS NULL"""
    )
    where, args = judgement_filter(selection, log_subject_sql(table, keyring is not None))
    found = con.execute(
        f"""SELECT split_part(h.problem, ':', 1), count(*) FROM {source} u JOIN {history} h ON h.__rid = u.__rid
            WHERE h.problem IS NOT NULL AND ({where}) GROUP BY ALL ORDER BY 1""",
        args,
    ).fetchall()
    return {str(reason): int(n) for reason, n in found}
