"""Pair expansion: table-driven cases and properties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflog.processors.pairs import Preference, ScoreMode, expand, pair_id


@dataclass(frozen=True)
class Case:
    name: str
    feedback: dict[str, Any]
    expected: list[tuple[int, int]]
    margin: float = 0.0
    mode: ScoreMode = "all"


def ranking(*ranks: int) -> dict[str, Any]:
    return {"kind": "RANKING", "ranking": [{"index": i, "rank": r} for i, r in enumerate(ranks)]}


def scores(*values: float) -> dict[str, Any]:
    return {"kind": "SCORES", "scores": [{"index": i, "score": s} for i, s in enumerate(values)]}


CASES = [
    Case("pairwise", {"kind": "PAIRWISE", "pairwise": {"chosen": 2, "rejected": 0}}, [(2, 0)]),
    Case("ranking of three", ranking(2, 1, 3), [(1, 0), (1, 2), (0, 2)]),
    Case("ranking with a tie", ranking(1, 1, 2), [(0, 2), (1, 2)]),
    Case("all tied", ranking(1, 1, 1), []),
    Case("scores, all pairs", scores(0.1, 0.9, 0.5), [(1, 2), (1, 0), (2, 0)]),
    Case("scores under the margin", scores(0.1, 0.9, 0.5), [(1, 0)], margin=0.5),
    Case("scores, best vs worst", scores(0.1, 0.9, 0.5), [(1, 0)], mode="best-vs-worst"),
    Case("equal scores", scores(1.0, 1.0), []),
    Case("rating gives no pair", {"kind": "RATING", "rating": {"index": 0, "label": True}}, []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_expansion(case: Case) -> None:
    got = [(p.chosen, p.rejected) for p in expand(case.feedback, case.margin, case.mode)]
    assert sorted(got) == sorted(case.expected)


def test_scores_carry_scores_and_margin() -> None:
    (pref,) = expand(scores(-1.0, 2.5))
    assert pref == Preference(1, 0, 2.5, -1.0, 3.5)


@given(st.integers(min_value=2, max_value=9).flatmap(lambda n: st.permutations(range(1, n + 1))))
def test_distinct_ranks_give_n_choose_2_pairs_all_consistent(ranks: list[int]) -> None:
    n = len(ranks)
    prefs = expand(ranking(*ranks))
    assert len(prefs) == n * (n - 1) // 2
    assert all(ranks[p.chosen] < ranks[p.rejected] for p in prefs)


@given(st.lists(st.floats(min_value=-100, max_value=100), min_size=2, max_size=8), st.floats(0, 10))
def test_score_pairs_exceed_the_margin_and_never_contradict(values: list[float], margin: float) -> None:
    prefs = expand(scores(*values), margin)
    assert all(values[p.chosen] - values[p.rejected] > margin for p in prefs)
    assert not {(p.chosen, p.rejected) for p in prefs} & {(p.rejected, p.chosen) for p in prefs}


@given(st.uuids(), st.integers(0, 50), st.integers(0, 50))
def test_pair_id_is_stable_and_distinct(fid: Any, a: int, b: int) -> None:
    assert pair_id(str(fid), a, b) == pair_id(str(fid), a, b)
    if a != b:
        assert pair_id(str(fid), a, b) != pair_id(str(fid), b, a)


def test_pair_id_is_the_same_across_runs() -> None:
    """A pinned value: if this changes, every stored pair_id changes and replays stop matching."""
    assert pair_id("00000000-0000-4000-8000-000000000000", 1, 0) == "e9963329-a93f-59eb-a111-e8184c8bb6d3"
