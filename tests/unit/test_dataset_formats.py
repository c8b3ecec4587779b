"""Every format of a build, from the same rows: one prompt text, provenance on every row, OpenAI's rules kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from preflog.dataset.build import build
from preflog.dataset.select import Selection

from .dataset_helpers import write_log

SYSTEM = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Name a prime."}]
TOOL_CALL = [
    {"role": "assistant", "content": "asking the calculator"},
    {"role": "tool", "content": "7"},
    {"role": "assistant", "content": "7"},
]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_text_and_conversational_formats_train_on_the_same_prompt(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")], prompt_messages=SYSTEM)
    build(log, tmp_path / "ds", "a", Selection(test_fraction=0.0))
    folder = tmp_path / "ds" / "a"
    (trl,) = _lines(folder / "trl" / "train.jsonl")
    (conversational,) = _lines(folder / "trl-conversational" / "train.jsonl")
    (nemo,) = _lines(folder / "nemo" / "train.jsonl")
    assert trl["prompt"] == "Answer in one word.\n\nName a prime." == nemo["prompt"]
    assert conversational["prompt"] == SYSTEM  # the same system prompt, as messages
    assert "\n\n".join(m["content"] for m in conversational["prompt"]) == trl["prompt"]
    assert (nemo["chosen_response"], nemo["rejected_response"]) == ("7", "9")
    assert (nemo["chosen_reward"], nemo["rejected_reward"]) == (1.5, -0.25)  # the sample's scores
    for row in (trl, conversational, nemo):
        assert {"pair_id", "request_id", "model", "source", "kind", "margin", "votes"} <= set(row)


def test_openai_rows_keep_its_rules_and_the_left_out_are_counted_with_provenance_beside(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")])
    url = write_log(log, [("Use a tool.", "7", "9", "HUMAN_ANNOTATOR")], first=1, chosen_messages=TOOL_CALL)
    m = build(url, tmp_path / "ds", "a", Selection(test_fraction=0.0))
    folder = tmp_path / "ds" / "a"
    rows = _lines(folder / "openai" / "train.jsonl")
    provenance = _lines(folder / "openai" / "train.provenance.jsonl")
    assert len(rows) == len(provenance) == 1
    assert set(rows[0]) == {"input", "preferred_output", "non_preferred_output"}
    assert rows[0]["preferred_output"] == [{"role": "assistant", "content": "7"}]
    assert provenance[0]["pair_id"] == "00000000-0000-4000-8000-000000000000"
    assert m["left_out"] == {
        "openai": {"preferred_output has 3 messages (exactly one assistant message is allowed)": 1}
    }
    assert len(_lines(folder / "trl-conversational" / "train.jsonl")) == 2  # TRL takes tool messages


def test_preflog_export_gives_the_build_s_prompt_text_and_provenance(tmp_path: Path) -> None:
    from preflog.sinks.export import export_rows
    from preflog.sinks.read import read_table

    log = write_log(tmp_path / "log", [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")], prompt_messages=SYSTEM)
    build(log, tmp_path / "ds", "a", Selection(test_fraction=0.0))
    (built,) = _lines(tmp_path / "ds" / "a" / "trl" / "train.jsonl")
    (exported,) = list(export_rows(read_table(log, "pairs"), "trl"))
    assert exported["prompt"] == built["prompt"] == "Answer in one word.\n\nName a prime."
    for column in ("pair_id", "request_id", "model", "model_version", "source", "kind", "margin", "chosen_score"):
        assert exported[column] == built[column], column
