"""A build's other records (KTO behind its gate, whole rankings, ties and both-bad) and the new selections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from preflog.dataset.build import build
from preflog.dataset.select import Selection

from .dataset_helpers import SAMPLE, ranking, rows, signal, write_table


def _lines(folder: Path, record: str) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((folder / record).glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_a_ranking_is_kept_whole_best_first_and_its_tied_answers_are_a_tie_record(tmp_path: Path) -> None:
    four = ranking(1, "Rank these.", ["a", "b", "c", "d"], [1, 2, 2, 3])  # b and c tie: 5 pairs, not 6
    two = ranking(2, "Only two.", ["x", "y"], [1, 2])  # one pair: nothing to keep together
    url = write_table(tmp_path / "log", "pairs", four + two + rows([("Pairwise?", "p", "q", "HUMAN_ANNOTATOR")]))
    build(url, tmp_path / "ds", "a", Selection(test_fraction=0.0))
    (listwise,) = _lines(tmp_path / "ds" / "a", "listwise")
    assert (listwise["prompt"], listwise["chosen"], listwise["rejected"]) == ("Rank these.", "a", ["b", "c", "d"])
    assert (listwise["completions"], listwise["ranks"]) == (["a", "b", "c", "d"], [1, 2, 2, 4])  # 1 + beaten by
    assert listwise["feedback_id"] == four[0]["feedback_id"] and listwise["kind"] == "RANKING"
    assert listwise["scores"] is None  # a ranking has no scores: null, not a list of nulls (datasets can't read those)
    (tie,) = _lines(tmp_path / "ds" / "a", "ties")
    assert (tie["relation"], tie["completion_a"], tie["completion_b"]) == ("tie", "b", "c")
    assert tie["prompt"] == "Rank these."
    top = ranking(4, "Tied at the top.", ["x", "y", "z"], [1, 1, 2])
    build(write_table(tmp_path / "log2", "pairs", top), tmp_path / "ds", "top", Selection(test_fraction=0.0))
    tied = next(r for r in _lines(tmp_path / "ds" / "top", "listwise") if r["prompt"] == "Tied at the top.")
    assert (tied["chosen"], tied["rejected"], tied["ranks"]) == ("x", ["z"], [1, 1, 3])  # y is not rejected
    # a min-margin selection drops pairs, not the ranking's answers: the tie is still a tie, not four
    build(url, tmp_path / "ds", "b", Selection(test_fraction=0.0, min_margin=2.0))
    assert [t["relation"] for t in _lines(tmp_path / "ds" / "b", "ties")] == ["tie"]


def test_kto_takes_explicit_labels_and_scores_beyond_the_thresholds_and_counts_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_table(log, "pairs", rows([("Scored?", "good", "bad", "REWARD_MODEL")]))  # scores 1.5 and -0.25
    signals = [
        signal(1, "Thumbs?", "fine", 0, True),
        signal(2, "Thumbs?", "poor", 0, False),
        signal(3, "Clicked?", "clicked", 0, True, explicit=False),
        signal(4, "Both?", "wrong", 0, False),
        signal(4, "Both?", "also wrong", 1, False),
    ]
    url = write_table(log, "unpaired", signals)
    m = build(url, tmp_path / "ds", "gate", Selection(test_fraction=0.0))
    kto = {r["completion"]: r["label"] for r in _lines(tmp_path / "ds" / "gate", "kto")}
    assert kto == {"fine": True, "poor": False, "wrong": False, "also wrong": False}  # no click, no score
    assert m["left_out"]["kto"] == {"implicit signal (no explicit judgement; --kto-implicit takes it)": 1}
    (both,) = _lines(tmp_path / "ds" / "gate", "ties")
    assert (both["relation"], both["completion_a"], both["completion_b"]) == ("both_bad", "wrong", "also wrong")

    m = build(url, tmp_path / "ds", "scores", Selection(test_fraction=0.0, kto_implicit=True, kto_desirable=1.0,
                                                        kto_undesirable=0.0))  # fmt: skip
    kto = {r["completion"]: r["label"] for r in _lines(tmp_path / "ds" / "scores", "kto")}
    assert (kto["clicked"], kto["good"], kto["bad"]) == (True, True, False) and "kto" not in m["left_out"]
    m = build(url, tmp_path / "ds", "high", Selection(test_fraction=0.0, kto_desirable=2.0, kto_undesirable=-1.0))
    assert "good" not in {r["completion"] for r in _lines(tmp_path / "ds" / "high", "kto")}
    assert m["left_out"]["kto"]["a score between the KTO thresholds (--kto-desirable, --kto-undesirable)"] == 2


def test_a_merged_duplicate_keeps_the_whole_row_of_its_first_pair(tmp_path: Path) -> None:
    human = rows([("Same texts?", "a", "b", "HUMAN_ANNOTATOR")], feedback_kind="PAIRWISE", margin=None,
                 chosen_score=None, rejected_score=None)  # fmt: skip
    scored = rows([("Same texts?", "a", "b", "REWARD_MODEL")], first=1)  # scores 1.5 and -0.25, margin 1.75
    url = write_table(tmp_path / "log", "pairs", human + scored)
    build(url, tmp_path / "ds", "a", Selection(test_fraction=0.0))
    (row,) = _lines(tmp_path / "ds" / "a", "trl")
    assert (row["votes"], row["source"], row["kind"]) == (2, "HUMAN_ANNOTATOR", "PAIRWISE")
    assert (row["margin"], row["chosen_score"]) == (None, None)  # the human pair's nulls, not the scores' values
    (nemo,) = _lines(tmp_path / "ds" / "a", "nemo")
    assert "chosen_reward" not in nemo


def test_tenant_and_min_score_select_pairs_and_every_record_keeps_the_split_of_its_prompt(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_table(log, "pairs", rows([(f"acme {i}?", "y", "n", "END_USER") for i in range(30)]))
    other = {**SAMPLE["context"], "tenant": "globex"}
    write_table(log, "pairs", rows([(f"globex {i}?", "y", "n", "END_USER") for i in range(5)], first=100,
                                   context=other, chosen_score=0.5))  # fmt: skip
    url = write_table(log, "unpaired", [signal(i, f"acme {i}?", "y", 0, True) for i in range(30)])
    m = build(url, tmp_path / "ds", "acme", Selection(tenants=("acme",), test_fraction=0.3))
    assert sum(m["rows"].values()) == 30 and sum(m["records"]["kto"].values()) == 30
    split_of: dict[str, str] = {}
    for path in (tmp_path / "ds" / "acme" / "trl").glob("*.jsonl"):
        split_of |= {json.loads(line)["prompt"]: path.stem for line in path.read_text().splitlines()}
    for path in (tmp_path / "ds" / "acme" / "kto").glob("*.jsonl"):
        assert all(split_of[json.loads(line)["prompt"]] == path.stem for line in path.read_text().splitlines())
    assert set(split_of.values()) == {"train", "test"}
    m = build(url, tmp_path / "ds", "scored", Selection(min_score=1.0, test_fraction=0.0))
    assert m["rows"]["train"] == 30  # the sample's chosen score is 1.5; globex's 0.5
    older = {**SAMPLE["model"], "version": "2026.10"}
    write_table(log, "pairs", rows([(f"older {i}?", "y", "n", "END_USER") for i in range(4)], first=200, model=older),
                first=200)  # fmt: skip
    m = build(url, tmp_path / "ds", "older", Selection(model_versions=("2026.10",), test_fraction=0.0))
    assert (m["rows"]["train"], m["records"]["kto"]) == (4, {})  # the signals were served by 2026.11
    with pytest.raises(ValueError):
        Selection(test_fraction=0.6, validation_fraction=0.5)
