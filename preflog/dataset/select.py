"""From audit-log pairs to dataset rows: selection, exact duplicates merged, contradictions resolved, splits.

All of it is one DuckDB query over the Arrow table (no Python loop per row):

* **selection**: dates (of the feedback), model names, source types, feedback
  kinds, explicit or implicit judgements, a minimum margin;
* **duplicates**: pairs with the same prompt, chosen and rejected text are one
  row; ``votes`` counts them and the row keeps the smallest pair_id's fields;
* **contradictions** (A over B and B over A for one prompt), by ``policy``:
  ``majority`` keeps the side with more votes (a tie drops both), ``drop``
  drops both, ``keep`` keeps both with ``weight`` = votes / all votes of the two;
* **caps**: at most N rows per model, model version, source, kind, tenant or
  user (``caps``), a seeded hash of the pair_id choosing which, so a few heavy
  users cannot dominate and the same seed picks the same rows;
* **splits** by a hash of the normalised prompt (lower case, runs of white
  space as one space) and the seed: a prompt never straddles two splits, and a
  pair keeps its split when the dataset is rebuilt with more data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

__all__ = ["CAP_COLUMNS", "POLICIES", "PROMPT_KEY", "Selection", "dataset_rows", "near_duplicate_prompts"]

Policy = Literal["majority", "drop", "keep"]
POLICIES: tuple[str, ...] = ("majority", "drop", "keep")
#: a prompt's normalised text, the key of splits, duplicates and decontamination (lower case, one space)
PROMPT_KEY = "lower(regexp_replace(trim(prompt), '\\s+', ' ', 'g'))"
#: the columns a build can cap rows per value of
CAP_COLUMNS: tuple[str, ...] = ("model", "model_version", "source", "kind", "tenant", "user_id")


@dataclass(frozen=True)
class Selection:
    """What a build takes from the log and how it cleans and splits it (all of it goes into the manifest)."""

    start: str | None = None
    end: str | None = None
    models: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    explicit: bool | None = None
    min_margin: float | None = None
    contradictions: Policy = "majority"
    test_fraction: float = 0.1
    validation_fraction: float = 0.0
    seed: int = 0
    caps: tuple[tuple[str, int], ...] = ()
    decontaminate: str | None = None  # an evaluation file: pairs whose prompt overlaps it are dropped
    ngram: int = 13  # the n-gram length of that overlap in words (0: exact matches only)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for column, n in self.caps:
            if column not in CAP_COLUMNS or n < 1:
                raise ValueError(f"cap {column}={n}: cap one of {', '.join(CAP_COLUMNS)} to at least 1 row")
        if self.contradictions not in POLICIES:
            raise ValueError(f"contradictions={self.contradictions!r}: choose one of {', '.join(POLICIES)}")
        fractions = (self.test_fraction, self.validation_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise ValueError("test and validation fractions must be >= 0 and leave some rows for train")


def _where(s: Selection) -> tuple[str, list[Any]]:
    parts: list[str] = ["TRUE"]
    args: list[Any] = []
    if s.start:
        parts.append("CAST(feedback_time AS DATE) >= CAST(? AS DATE)")
        args.append(s.start)
    if s.end:
        parts.append("CAST(feedback_time AS DATE) <= CAST(? AS DATE)")
        args.append(s.end)
    for column, values in (("model.name", s.models), ("CAST(source.type AS VARCHAR)", [v.upper() for v in s.sources]),
                           ("CAST(feedback_kind AS VARCHAR)", [v.upper() for v in s.kinds])):  # fmt: skip
        if values:
            parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
            args += list(values)
    if s.explicit is not None:
        parts.append("explicit = ?")
        args.append(s.explicit)
    if s.min_margin is not None:
        parts.append("margin >= ?")
        args.append(s.min_margin)
    return " AND ".join(parts), args


#: the columns of a dataset row, from the representative pair of each merged group
_KEEP = """
    prompt, chosen, rejected, prompt_messages, chosen_messages, rejected_messages,
    pair_id, request_id, feedback_id, model.name AS model, model.version AS model_version,
    chosen_model.name AS chosen_model, rejected_model.name AS rejected_model,
    CAST(source.type AS VARCHAR) AS source, source.id AS source_id, source.version AS source_version,
    CAST(feedback_kind AS VARCHAR) AS kind, explicit, margin, chosen_score, rejected_score,
    CAST(feedback_time AS VARCHAR) AS feedback_time, context.tenant AS tenant, context.user_id AS user_id
"""


def dataset_rows(pairs: pa.Table, s: Selection) -> pa.Table:
    """The dataset's rows, ordered by pair_id, with ``votes``, ``weight``, ``opposing_votes`` and ``split``."""
    import duckdb

    where, args = _where(s)
    test_end = s.test_fraction
    validation_end = s.test_fraction + s.validation_fraction
    keep = {
        "majority": "o.votes IS NULL OR m.votes > o.votes",
        "drop": "o.votes IS NULL",
        "keep": "TRUE",
    }[s.contradictions]
    query = f"""
        WITH chosen_rows AS (
            SELECT {_KEEP},
                   {PROMPT_KEY} AS prompt_key
            FROM pairs WHERE {where}
        ),
        merged AS (
            SELECT prompt_key, prompt, chosen, rejected, count(*) AS votes,
                   arg_min(COLUMNS(* EXCLUDE (prompt_key, prompt, chosen, rejected)), pair_id)
            FROM chosen_rows GROUP BY prompt_key, prompt, chosen, rejected
        )
        SELECT m.* EXCLUDE (prompt_key),
               coalesce(o.votes, 0) AS opposing_votes,
               m.votes / (m.votes + coalesce(o.votes, 0)) AS weight,
               CASE
                   WHEN u < {test_end} THEN 'test'
                   WHEN u < {validation_end} THEN 'validation'
                   ELSE 'train'
               END AS split
        FROM (
            SELECT *, CAST(('0x' || substr(md5('{s.seed}:' || prompt_key), 1, 12)) AS UBIGINT) / 281474976710656.0 AS u
            FROM merged
        ) m
        LEFT JOIN merged o ON o.prompt = m.prompt AND o.chosen = m.rejected AND o.rejected = m.chosen
        WHERE {keep}
    """
    if s.caps:
        ranks = ", ".join(
            f"row_number() OVER (PARTITION BY {column} ORDER BY md5('{s.seed}:' || pair_id), pair_id) AS rank_{i}"
            for i, (column, _) in enumerate(s.caps)
        )
        within = " AND ".join(f"rank_{i} <= {int(n)}" for i, (_, n) in enumerate(s.caps))
        dropped = ", ".join(f"rank_{i}" for i in range(len(s.caps)))
        query = f"SELECT * EXCLUDE ({dropped}) FROM (SELECT *, {ranks} FROM ({query})) WHERE {within}"
    query = f"SELECT * FROM ({query}) ORDER BY pair_id"
    con = duckdb.connect()
    try:
        con.register("pairs", pairs)
        result = con.sql(query, params=args).to_arrow_table()
    finally:
        con.close()
    table = result if isinstance(result, pa.Table) else result.read_all()
    return table.drop_columns(["u"]) if "u" in table.column_names else table


def near_duplicate_prompts(rows: pa.Table) -> int:
    """How many normalised prompts of ``rows`` are written in more than one way (case or white space)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("rows", rows.select(["prompt"]))
        found = con.sql(
            f"SELECT count(*) FROM (SELECT {PROMPT_KEY} AS k FROM rows GROUP BY k HAVING count(DISTINCT prompt) > 1)"
        ).fetchall()
    finally:
        con.close()
    return int(found[0][0]) if found else 0
