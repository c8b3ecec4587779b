"""Duplicates and contradictions of rich pairs: images, tool calls and tools are part of what is compared.

Two judgements of one question about different images, or two trajectories ending in the same words but
calling tools differently, are different pairs: never merged as duplicates, never each other's contradiction.
What a contradiction policy leaves out is counted in the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from preflog.dataset.build import build
from preflog.dataset.select import Selection

from .dataset_helpers import PAIRS, write_log

QUESTION = "Is the square red?"


def _png(path: Path, colour: str) -> str:
    out = io.BytesIO()
    Image.new("RGB", (2, 2), colour).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return hashlib.sha256(out.getvalue()).hexdigest()


def _asked(path: Path, sha256: str) -> list[dict[str, Any]]:
    image = {"uri": f"file://{path}", "sha256": sha256, "media_type": "image/png"}
    return [{"role": "user", "content": QUESTION, "images": [image]}]


def _trajectory(a: int, b: int) -> list[dict[str, Any]]:
    call = {"id": "c1", "name": "add", "arguments": json.dumps({"a": a, "b": b})}
    return [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": str(a + b), "name": "add", "tool_call_id": "c1"},
        {"role": "assistant", "content": "done"},
    ]


def _rows(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "trl-conversational" / "train.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda r: r["pair_id"])


@pytest.mark.parametrize("policy", ["majority", "drop", "keep"])
def test_opposite_verdicts_on_different_images_are_two_rows_not_a_contradiction(tmp_path: Path, policy: str) -> None:
    red, blue, again = tmp_path / "red.png", tmp_path / "blue.png", tmp_path / "red-again.png"
    log = tmp_path / "log"
    write_log(log, [(QUESTION, "Yes", "No", "HUMAN_ANNOTATOR")], prompt_messages=_asked(red, _png(red, "red")))
    write_log(
        log, [(QUESTION, "No", "Yes", "HUMAN_ANNOTATOR")], first=1, prompt_messages=_asked(blue, _png(blue, "blue"))
    )
    # the same picture at another address: the same question, so a duplicate of the first
    url = write_log(
        log, [(QUESTION, "Yes", "No", "HUMAN_ANNOTATOR")], first=2, prompt_messages=_asked(again, _png(again, "red"))
    )
    m = build(url, tmp_path / "ds", "x", Selection(test_fraction=0.0, contradictions=policy))  # type: ignore[arg-type]
    rows = _rows(tmp_path / "ds" / "x")
    assert [(r["pair_id"][-1], r["votes"], r["weight"]) for r in rows] == [("0", 2, 1.0), ("1", 1, 1.0)]
    assert m["merged_duplicates"] == 1 and m["contradicted_rows"] == 0 and m["contradictions_dropped"] == 0


@pytest.mark.parametrize("policy", ["majority", "drop", "keep"])
def test_trajectories_with_the_same_final_text_are_compared_by_their_tool_calls(tmp_path: Path, policy: str) -> None:
    log = tmp_path / "log"
    # chosen and rejected end in the same words: only their tool calls differ (never its own contradiction)
    write_log(log, [("Add.", "done", "done", "HUMAN_ANNOTATOR")], chosen_messages=_trajectory(3, 4),
              rejected_messages=_trajectory(3, 5))  # fmt: skip
    # the same final text, another chosen trajectory: not a duplicate of the first
    url = write_log(log, [("Add.", "done", "done", "HUMAN_ANNOTATOR")], first=1, chosen_messages=_trajectory(1, 1),
                    rejected_messages=_trajectory(3, 5))  # fmt: skip
    m = build(url, tmp_path / "ds", "x", Selection(test_fraction=0.0, contradictions=policy))  # type: ignore[arg-type]
    rows = _rows(tmp_path / "ds" / "x")
    assert [(r["votes"], r["weight"]) for r in rows] == [(1, 1.0), (1, 1.0)]
    assert m["merged_duplicates"] == 0 and m["contradicted_rows"] == 0 and m["contradictions_dropped"] == 0


def test_the_tools_offered_are_part_of_the_prompt(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [("Add.", "7", "8", "HUMAN_ANNOTATOR")], tools='[{"type":"function","function":{"name":"add"}}]')
    url = write_log(log, [("Add.", "8", "7", "HUMAN_ANNOTATOR")], first=1,
                    tools='[{"type":"function","function":{"name":"add_wrongly"}}]')  # fmt: skip
    m = build(url, tmp_path / "ds", "x", Selection(test_fraction=0.0))
    assert len(_rows(tmp_path / "ds" / "x")) == 2 and m["contradictions_dropped"] == 0


@pytest.mark.parametrize(("policy", "dropped"), [("majority", 3), ("drop", 5), ("keep", 0)])
def test_the_pairs_a_contradiction_policy_leaves_out_are_counted(tmp_path: Path, policy: str, dropped: int) -> None:
    url = write_log(tmp_path / "log", PAIRS)
    m = build(url, tmp_path / "ds", "x", Selection(test_fraction=0.2, contradictions=policy))  # type: ignore[arg-type]
    # majority: Lyon over Paris (1 vote to 2) and both sides of the 1-to-1 tie; drop: all 5 contradicting pairs
    assert m["contradictions_dropped"] == dropped
    assert m["pairs_selected"] == sum(m["rows"].values()) + m["merged_duplicates"] + dropped  # every pair accounted
