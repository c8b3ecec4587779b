"""A small audit log of chosen pairs, for the dataset tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

from ..samples import all_samples

__all__ = ["PAIRS", "SAMPLE", "write_log"]

SAMPLE = all_samples()["PreferencePair"]
#: (prompt, chosen, rejected, source type) of each pair; ids follow the list order
PAIRS = [
    ("Name a prime.", "7", "9", "HUMAN_ANNOTATOR"),
    ("Name a prime.", "7", "9", "HUMAN_ANNOTATOR"),  # exact duplicate
    ("Name a prime.", "7", "9", "REWARD_MODEL"),  # a third vote, another source
    ("Capital of France?", "Paris", "Lyon", "HUMAN_ANNOTATOR"),
    ("Capital of France?", "Paris", "Lyon", "HUMAN_ANNOTATOR"),
    ("Capital of France?", "Lyon", "Paris", "HUMAN_ANNOTATOR"),  # contradicts the two above: 2 to 1
    ("Tie?", "a", "b", "HUMAN_ANNOTATOR"),
    ("Tie?", "b", "a", "HUMAN_ANNOTATOR"),  # 1 to 1
] + [(f"  Question   {i}? ", "yes", "no", "END_USER") for i in range(40)]


def rows(pairs: list[tuple[str, str, str, str]], first: int = 0, **extra: Any) -> list[dict[str, Any]]:
    """Pair records (the sample's fields) with these texts and sources; ids follow the list order."""
    out = []
    for i, (prompt, chosen, rejected, source) in enumerate(pairs, start=first):
        out.append(
            {
                **SAMPLE,
                "pair_id": f"00000000-0000-4000-8000-{i:012d}",
                "prompt": prompt,
                "prompt_messages": [{"role": "user", "content": prompt}],
                "chosen": chosen,
                "rejected": rejected,
                "source": {**SAMPLE["source"], "type": source},
                **extra,
            }
        )
    return out


def write_log(root: Path, pairs: list[tuple[str, str, str, str]], first: int = 0, **extra: Any) -> str:
    """One pairs file of these pairs under ``root``; the log's URL."""
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    body = encode(to_table(rows(pairs, first, **extra), schema))
    name = file_name("preflog.pairs.v1", 0, first, first + len(pairs) - 1)
    Storage(f"file://{root}").put(f"pairs/dt=2026-11-01/{name}", body)
    return f"file://{root}"
