"""A seeded audit log with what a reader must get right: repeated ids, stray copies, rows without ids.

Also a copy that sorts first, rankings with ties, score lists, contradictions, messages and signals.

The streaming dataset build and report are held to the outputs the in-memory ones gave on this log
(``tests/unit/test_streaming_golden.py``).
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

from .dataset_helpers import SAMPLE, ranking, signal, write_table

__all__ = ["EVALUATION", "adversarial_log", "grow"]

_PROMPTS = [f"Question {i}: what is {i} + {i}?" for i in range(40)] + ["Name a prime.", "Capital of France?"]
_ANSWERS = ["7", "9", "Paris", "Lyon", "yes", "no", "I cannot say.", "Let me think step by step: 4.", "42"]
_SOURCES = ["HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL"]
_MODELS = [("acme-chat", "2026.10"), ("acme-chat", "2026.11"), ("acme-mini", "1.4")]
#: prompts an evaluation set holds (exact, another spelling, a 5-gram of a longer prompt)
EVALUATION = ["question 3: what is 3 + 3?", "  QUESTION 4:   what is 4 + 4? ", "unrelated words what is 5 + 5? more"]


def _pair(rng: random.Random, i: int, blank_id: bool = False) -> dict[str, Any]:
    prompt = rng.choice(_PROMPTS)
    if rng.random() < 0.1:
        prompt = "  " + prompt.upper() + " "  # another spelling of one normalised prompt
    chosen, rejected = rng.sample(_ANSWERS, 2)
    name, version = rng.choice(_MODELS)
    other = rng.choice(_MODELS)
    scored = rng.random() < 0.3
    system = rng.random() < 0.2
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages = [{"role": "system", "content": "Be brief."}, *messages]
    kind = "SCORES" if scored else rng.choice(["PAIRWISE", "PAIRWISE", "RANKING"])
    return {
        **SAMPLE,
        "pair_id": "" if blank_id else f"00000000-0000-4000-8000-{i:012d}",
        "feedback_id": f"00000000-0000-4000-9000-{i:012d}",
        "request_id": f"00000000-0000-4000-a000-{i // 2:012d}",
        "feedback_kind": kind,
        "prompt": prompt,
        "prompt_messages": messages if rng.random() < 0.8 else None,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_messages": [{"role": "assistant", "content": chosen}] if rng.random() < 0.3 else None,
        "chosen_index": 0,
        "rejected_index": 1 + rng.randrange(3),
        "chosen_score": round(rng.uniform(0, 3), 2) if scored else None,
        "rejected_score": round(rng.uniform(-3, 0), 2) if scored else None,
        "margin": round(rng.uniform(0, 4), 2),
        "model": {**SAMPLE["model"], "name": name, "version": version},
        "chosen_model": (
            {"name": other[0], "version": other[1], "checkpoint_hash": None} if rng.random() < 0.3 else None
        ),
        "source": {**SAMPLE["source"], "type": rng.choice(_SOURCES), "id": f"judge-{rng.randrange(4)}"},
        "explicit": rng.random() < 0.8,
        "context": {**SAMPLE["context"], "tenant": rng.choice(["t1", "t2"]), "user_id": f"u{rng.randrange(6)}"},
        "feedback_time": SAMPLE["feedback_time"] + timedelta(milliseconds=rng.randrange(3 * 86_400_000)),
        "join_latency_ms": rng.randrange(100, 3_600_000),
    }


def _put(root: Path, dt: str, records: list[dict[str, Any]], first: int) -> None:
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    name = file_name("preflog.pairs.v1", 0, first, first + len(records) - 1)
    Storage(f"file://{root}").put(f"pairs/dt={dt}/{name}", encode(to_table(records, schema)))


def adversarial_log(root: Path, seed: int = 11) -> str:
    """Write the log under ``root``; its URL."""
    rng = random.Random(seed)
    first = [_pair(rng, i, blank_id=i % 97 == 5) for i in range(400)]
    _put(root, "2026-11-01", first, 0)
    _put(root, "2026-11-01", [dict(p) for p in first[100:160]], 5000)  # a stray copy, sorting after
    early = [{**p, "source": {**p["source"], "type": "END_USER"}} for p in first[200:230]]
    _put(root, "2026-10-31", early, 9000)  # copies that sort first, with other content: they win
    second = [_pair(rng, i) for i in range(400, 700)]
    second += [{**second[3], "pair_id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(800, 806)]  # votes
    flipped = {**second[4], "chosen": second[4]["rejected"], "rejected": second[4]["chosen"]}
    second += [{**flipped, "pair_id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(806, 810)]
    _put(root, "2026-11-02", second, 400)
    for f in range(6):
        answers = ["a", "b", "c", "d"][: 3 + f % 2]
        ranks = [1, 1, 2, 3][: len(answers)] if f % 3 == 0 else list(range(1, len(answers) + 1))
        write_table(root, "pairs", ranking(100 + f, f"Rank these {f}.", answers, ranks), first=20_000 + 100 * f)
    signals = [signal(i, rng.choice(_PROMPTS), rng.choice(_ANSWERS), i % 3, rng.random() < 0.5,
                      explicit=rng.random() < 0.7) for i in range(120)]  # fmt: skip
    signals += [signal(5, _PROMPTS[5], "bad one", 1, False), signal(5, _PROMPTS[5], "bad two", 2, False)]
    write_table(root, "unpaired", signals)
    return write_table(root, "unpaired", signals[10:30], first=500)  # a stray copy


def grow(root: Path, seed: int = 12) -> None:
    """More files after a first build: new pairs, copies of old ids sorting first and last, a ranking, signals."""
    rng = random.Random(seed)
    _put(root, "2026-11-03", [_pair(rng, i) for i in range(1000, 1200)], 1000)
    again = [_pair(rng, i) for i in range(300, 320)]  # new content under ids the first file has
    _put(root, "2026-10-30", again[:10], 30_000)  # sorts first: replaces the old rows
    _put(root, "2026-11-04", again[10:], 31_000)  # sorts last: dropped
    write_table(root, "pairs", ranking(900, "Rank later.", ["a", "b", "c"], [1, 1, 2]), first=40_000)
    write_table(root, "unpaired", [signal(200 + i, f"later {i}?", "x", 0, i % 2 == 0) for i in range(8)], first=900)
