"""Drop pairs whose prompt overlaps an evaluation set: the same normalised text, or a shared word n-gram.

Both sides are normalised by the expression the splits use
(:data:`preflog.dataset.select.PROMPT_KEY`: lower case, runs of white space as
one space), and their n-grams are made and matched by one DuckDB query.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from .select import PROMPT_KEY

__all__ = ["decontaminate", "eval_prompts"]


def eval_prompts(path: Path) -> list[str]:
    """The prompts of an evaluation file: JSON lines with a ``prompt`` (or ``question``) field, or plain lines."""
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = line
        if isinstance(record, dict):
            text = record.get("prompt") or record.get("question")
            if not isinstance(text, str):
                raise ValueError(f"{path}: a JSON line without a text 'prompt' or 'question' field: {line[:80]}")
            prompts.append(text)
        else:
            prompts.append(line)
    return prompts


def decontaminate(
    rows: pa.Table, prompts: list[str], n: int, id_column: str = "pair_id"
) -> tuple[pa.Table, dict[str, int]]:
    """``rows`` without the pairs whose prompt matches an evaluation prompt; how many went, by way.

    Args:
        rows: dataset rows (with ``prompt`` and a unique ``id_column``).
        prompts: the evaluation prompts.
        n: n-gram length in words (0: exact matches only).
        id_column: the rows' id.
    """
    import duckdb

    def keyed(table: str) -> str:
        return f"SELECT id, {PROMPT_KEY} AS k FROM {table}"

    def ngrams(table: str) -> str:
        split = f"SELECT id, string_split(k, ' ') AS w FROM ({keyed(table)})"
        starts = f"SELECT id, w, unnest(range(1, greatest(len(w) - {n} + 2, 1))) AS i FROM ({split})"
        return f"SELECT id, array_to_string(list_slice(w, i, i + {n} - 1), ' ') AS g FROM ({starts})"

    con = duckdb.connect()
    try:
        con.register("rows", rows.select([id_column, "prompt"]).rename_columns(["id", "prompt"]))
        con.register("evaluation", pa.table({"id": range(len(prompts)), "prompt": pa.array(prompts, pa.string())}))
        query = f"SELECT DISTINCT r.id FROM ({keyed('rows')}) r JOIN ({keyed('evaluation')}) e USING (k)"
        same = {r[0] for r in con.sql(query).fetchall()}
        shared: set[str] = set()
        if n > 0:
            query = f"SELECT DISTINCT r.id FROM ({ngrams('rows')}) r JOIN ({ngrams('evaluation')}) e USING (g)"
            shared = {r[0] for r in con.sql(query).fetchall()} - same
    finally:
        con.close()
    gone = same | shared
    if gone:
        keep = pa.compute.invert(pa.compute.is_in(rows.column(id_column), pa.array(sorted(gone), pa.string())))
        rows = rows.filter(keep)
    return rows, {"exact": len(same), "ngram": len(shared)}
