"""Drop pairs whose prompt overlaps an evaluation set: the same normalised text, or a shared word n-gram.

Both sides are normalised by the expression the splits use
(:data:`preflog.dataset.select.PROMPT_KEY`: lower case, runs of white space as
one space), and their n-grams are made and matched by one DuckDB query over the
build's table: the rows' n-grams stream past the evaluation set's, never held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def decontaminate(con: Any, relation: str, prompts: list[str], n: int, id_column: str = "pair_id") -> dict[str, int]:
    """The ids of ``relation``'s rows whose prompt matches an evaluation prompt; how many, by way.

    The ids go to the table ``{relation}_gone`` (``id``): the build leaves every row with one of them out.

    Args:
        con: the build's DuckDB connection.
        relation: a relation with ``prompt`` and ``id_column``.
        prompts: the evaluation prompts.
        n: n-gram length in words (0: exact matches only).
        id_column: the rows' id (every row with a matching id is left out).
    """

    def keyed(table: str, column: str) -> str:
        return f"SELECT {column} AS id, {PROMPT_KEY} AS k FROM {table}"

    def ngrams(table: str, column: str) -> str:
        split = f"SELECT id, string_split(k, ' ') AS w FROM ({keyed(table, column)})"
        starts = f"SELECT id, w, unnest(range(1, greatest(len(w) - {n} + 2, 1))) AS i FROM ({split})"
        return f"SELECT id, array_to_string(list_slice(w, i, i + {n} - 1), ' ') AS g FROM ({starts})"

    con.register("__evaluation", pa.table({"id": range(len(prompts)), "prompt": pa.array(prompts, pa.string())}))
    try:
        same = f"""SELECT DISTINCT r.id FROM ({keyed(relation, id_column)}) r
                   JOIN ({keyed("__evaluation", "id")}) e USING (k)"""
        con.execute(f"CREATE OR REPLACE TEMP TABLE __same AS {same}")
        con.execute("CREATE OR REPLACE TEMP TABLE __shared AS SELECT * FROM __same WHERE FALSE")
        if n > 0:
            shared = f"""SELECT DISTINCT r.id FROM ({ngrams(relation, id_column)}) r
                         SEMI JOIN ({ngrams("__evaluation", "id")}) e USING (g)"""
            con.execute(f"CREATE OR REPLACE TEMP TABLE __shared AS {shared} EXCEPT SELECT id FROM __same")
        exact = int(con.execute("SELECT count(*) FROM __same").fetchall()[0][0])
        ngram = int(con.execute("SELECT count(*) FROM __shared").fetchall()[0][0])
        con.execute(f"CREATE OR REPLACE TABLE {relation}_gone AS FROM __same UNION ALL FROM __shared")
    finally:
        con.unregister("__evaluation")
    return {"exact": exact, "ngram": ngram}
