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

__all__ = ["PAIRS", "SAMPLE", "SIGNAL", "ranking", "signal", "write_log", "write_table"]

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


SIGNAL = all_samples()["UnpairedSignal"]


def write_table(root: Path, table: str, records: list[dict[str, Any]], first: int = 0) -> str:
    """A file of ``table`` (pairs, unpaired, unmatched, dead_letter) with ``records`` from offset ``first``; the URL."""
    record = {"pairs": "PreferencePair", "unpaired": "UnpairedSignal", "unmatched": "UnmatchedRecord",
              "dead_letter": "DeadLetter"}[table]  # fmt: skip
    schema = arrow_schema(default_store().latest(record).raw)
    name = file_name(f"preflog.{table.replace('_', '-')}.v1", 0, first, first + len(records) - 1)
    Storage(f"file://{root}").put(f"{table}/dt=2026-11-01/{name}", encode(to_table(records, schema)))
    return f"file://{root}"


def ranking(feedback: int, prompt: str, answers: list[str], ranks: list[int], **extra: Any) -> list[dict[str, Any]]:
    """The pairs a RANKING judgement gives (every pair the ranks decide), as the processor expands it."""
    out = []
    for i, a in enumerate(answers):
        for j, b in enumerate(answers):
            if ranks[i] < ranks[j]:
                out.append(
                    {
                        **SAMPLE,
                        "pair_id": f"00000000-0000-4000-{feedback:04d}-{i:06d}{j:06d}",
                        "feedback_id": f"00000000-0000-4000-{feedback:04d}-000000000000",
                        "request_id": f"00000000-0000-4000-{feedback:04d}-111111111111",
                        "feedback_kind": "RANKING",
                        "prompt": prompt,
                        "prompt_messages": [{"role": "user", "content": prompt}],
                        "chosen": a,
                        "rejected": b,
                        "chosen_index": i,
                        "rejected_index": j,
                        "chosen_score": None,
                        "rejected_score": None,
                        "margin": float(ranks[j] - ranks[i]),
                        **extra,
                    }
                )
    return out


def signal(n: int, prompt: str, completion: str, index: int, label: bool, explicit: bool = True) -> dict[str, Any]:
    """An unpaired signal (a rating when explicit, else an implicit click) of request ``n``."""
    return {
        **SIGNAL,
        "signal_id": f"00000000-0000-4000-9000-{n:06d}{index:06d}",
        "request_id": f"00000000-0000-4000-8888-{n:012d}",
        "feedback_id": f"00000000-0000-4000-7777-{n:06d}{index:06d}",
        "feedback_kind": "RATING" if explicit else "IMPLICIT",
        "prompt": prompt,
        "prompt_messages": [{"role": "user", "content": prompt}],
        "completion": completion,
        "completion_index": index,
        "label": label,
        "explicit": explicit,
        "signal": "thumbs" if explicit else "click",
    }
