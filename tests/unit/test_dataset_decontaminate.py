"""Decontamination: pairs whose prompt matches an evaluation prompt, exactly or by a shared n-gram, are dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from preflog.dataset.build import build
from preflog.dataset.select import Selection

from .dataset_helpers import write_log

PAIRS = [
    ("Name a prime.", "7", "9", "HUMAN_ANNOTATOR"),
    ("Please name the largest planet in our solar system", "Jupiter", "Mars", "HUMAN_ANNOTATOR"),
    ("Capital of France?", "Paris", "Lyon", "HUMAN_ANNOTATOR"),
]


def test_exact_and_ngram_matches_are_dropped_and_counted_and_the_file_is_pinned(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", PAIRS)
    evaluation = tmp_path / "eval.jsonl"
    lines = [{"prompt": "NAME a   prime."}, {"question": "What is the largest planet in our solar system?"}]
    evaluation.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    selection = Selection(test_fraction=0.0, decontaminate=str(evaluation), ngram=4)
    m = build(log, tmp_path / "ds", "a", selection)
    prompts = pq.read_table(tmp_path / "ds" / "a" / "data" / "train-00000-of-00001.parquet").column("prompt")
    assert prompts.to_pylist() == ["Capital of France?"]
    assert m["decontamination"]["dropped"] == {"exact": 1, "ngram": 1}  # "largest planet in our" is shared
    evaluation.write_text("Capital of Spain?\n")  # the same path, other text: another content
    other = build(log, tmp_path / "ds", "b", selection)
    assert other["decontamination"]["dropped"] == {"exact": 0, "ngram": 0}
    assert other["content_hash"] != m["content_hash"]
