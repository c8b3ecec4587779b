"""Drop pairs whose prompt overlaps an evaluation set: the same normalised text, or a shared word n-gram.

Texts are normalised as the splits normalise them (lower case, runs of white
space as one space). The evaluation set is small: its n-grams are made in
Python; the dataset's are made and matched in DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

__all__ = ["decontaminate", "eval_prompts"]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


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


def decontaminate(rows: pa.Table, prompts: list[str], n: int) -> tuple[pa.Table, dict[str, int]]:
    """``rows`` without the pairs whose prompt matches an evaluation prompt; how many went, by way.

    Args:
        rows: dataset rows (with ``pair_id`` and ``prompt``).
        prompts: the evaluation prompts.
        n: n-gram length in words (0: exact matches only).
    """
    import duckdb

    exact = sorted({_normal(p) for p in prompts})
    grams = set()
    if n > 0:
        for p in exact:
            words = p.split(" ")
            grams |= {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    con = duckdb.connect()
    try:
        con.register("rows", rows.select(["pair_id", "prompt"]))
        con.register("exact", pa.table({"k": pa.array(exact, pa.string())}))
        con.register("grams", pa.table({"g": pa.array(sorted(grams), pa.string())}))
        keyed = "SELECT pair_id, lower(regexp_replace(trim(prompt), '\\s+', ' ', 'g')) AS k FROM rows"
        same = {r[0] for r in con.sql(f"SELECT pair_id FROM ({keyed}) JOIN exact USING (k)").fetchall()}
        shared: set[str] = set()
        if n > 0 and grams:
            split = f"SELECT pair_id, string_split(k, ' ') AS w FROM ({keyed})"
            starts = f"SELECT pair_id, w, unnest(range(1, greatest(len(w) - {n} + 2, 1))) AS i FROM ({split})"
            ngrams = f"SELECT pair_id, array_to_string(list_slice(w, i, i + {n} - 1), ' ') AS g FROM ({starts})"
            query = f"SELECT DISTINCT pair_id FROM ({ngrams}) JOIN grams USING (g)"
            shared = {r[0] for r in con.sql(query).fetchall()} - same
    finally:
        con.close()
    gone = same | shared
    if gone:
        keep = pa.compute.invert(pa.compute.is_in(rows.column("pair_id"), pa.array(sorted(gone), pa.string())))
        rows = rows.filter(keep)
    return rows, {"exact": len(same), "ngram": len(shared)}
