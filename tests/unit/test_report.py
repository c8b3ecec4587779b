"""preflog report on a log whose figures are known by hand, and its files: self-contained HTML, data beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from preflog.dataset.select import Selection
from preflog.report.build import report
from preflog.report.stats import wilson_interval

from .report_helpers import known_log


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("report")
    url = known_log(tmp / "log")
    folder = tmp / "out"
    report(url, folder, Selection(), rounds=50)
    return folder, json.loads((folder / "summary.json").read_text())["figures"]


def test_the_a_b_figures_are_the_hand_counts(made: tuple[Path, dict]) -> None:
    folder, figures = made
    ab = figures["ab"]["summary"]
    assert (ab["a"], ab["b"]) == ("acme@1", "acme@2")  # the later version is B
    # annotators: a-1 gives NEW 21 of 30, a-2 2 of 3 (requests 0 and 1), the two without an id 2 of 2; end users 3 of 4
    rows = {r["source"]: r for r in json.loads((folder / "figures" / "ab.json").read_text())}
    assert (rows["HUMAN_ANNOTATOR"]["n"], rows["HUMAN_ANNOTATOR"]["rate"]) == (30 + 3 + 2, pytest.approx(25 / 35))
    assert (rows["END_USER"]["n"], rows["END_USER"]["rate"]) == (4, 0.75) and not rows["END_USER"]["decided"]
    low, high = wilson_interval(25, 35)
    human = rows["HUMAN_ANNOTATOR"]
    assert (human["low"], human["high"]) == (pytest.approx(low), pytest.approx(high))
    assert any("END_USER: 4 comparisons is too small" in n for n in figures["ab"]["notes"])
    board = pq.read_table(folder / "figures" / "leaderboard.parquet").to_pylist()
    assert [r["model"] for r in board] == ["acme@2", "acme@1"]
    assert board[0]["low"] <= board[0]["strength"] <= board[0]["high"]


def test_length_position_and_agreement_are_the_hand_counts(made: tuple[Path, dict]) -> None:
    folder, figures = made
    # a-1: NEW (20 characters) over OLD (10) on 0..20, OLD over NEW (20) on 21..23, OLD over NEW (5) on 24..29:
    # 21 + 6 longer chosen of 30; a-2: NEW on 0 and 1 (longer), OLD on 2 (shorter): 2 of 3; the two without an id:
    # NEW (longer) 2 of 2; the ranking's answers have one length: left out
    assert figures["length_bias"]["summary"]["source:HUMAN_ANNOTATOR"] == pytest.approx(31 / 35, abs=1e-4)
    assert figures["length_bias"]["summary"]["source:END_USER"] == pytest.approx(3 / 4)
    rm = figures["rm_agreement"]["summary"]
    # the headline is the reward model with the most comparisons, rm 7, never added to rm-b: against a-1 on
    # 0..9 (8 agree), a-2 on 0..2 (2 agree) and the two without an id on 3 (2 agree): 12 of 15
    assert (rm["reward_model"], rm["comparisons"], rm["accuracy"]) == ("rm 7", 15, pytest.approx(12 / 15))
    # NEW is candidate 0. Human first / RM first: a-1 on 0..7, a-2 on 0, 1, the two on 3 (12); human first / RM
    # second: a-1 on 8, 9 (2); human second / RM first: a-2 on 2 (1); none both second. p_o = 12/15,
    # p_e = (14/15)(13/15) + (1/15)(2/15) = 184/225, kappa = (180/225 - 184/225) / (41/225) = -4/41
    assert rm["kappa"] == pytest.approx(-4 / 41)
    rows = {r["reward_model"]: r for r in json.loads((folder / "figures" / "rm_agreement.json").read_text())}
    # rm-b against a-1 on 0..4 (0 agree), a-2 on 0..2 (agrees on 2), the two on 3 (0): 1 of 10
    assert (rows["rm-b 1"]["comparisons"], rows["rm-b 1"]["accuracy"]) == (10, pytest.approx(0.1))
    humans = figures["human_agreement"]["summary"]
    # requests 0, 1, 2 (a-1, a-2) and 3 (a-1 and the two without an id, each a rater): 0, 1 and 3 unanimous
    assert (humans["comparisons"], humans["unanimous"]) == (4, pytest.approx(3 / 4))
    assert not figures["human_agreement"]["flags"] and not figures["position_bias"]["flags"]  # samples too small


def test_the_folder_holds_a_self_contained_page_and_every_figure_s_data(made: tuple[Path, dict]) -> None:
    folder, figures = made
    html = (folder / "report.html").read_text()
    assert "<script" not in html and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") == sum(1 for name in figures if (folder / "figures" / f"{name}.parquet").exists()
                                     and pq.read_metadata(folder / "figures" / f"{name}.parquet").num_rows > 0)
    for name in figures:
        assert (folder / "figures" / f"{name}.json").exists() and (folder / "figures" / f"{name}.parquet").exists()
        assert f'id="{name}"' in html
    for section in ("Leaderboard", "A/B", "Bias monitors", "Agreement", "Coverage and health"):
        assert f"<h2>{section}</h2>" in html


def test_coverage_and_join_latency_count_every_judgement_once(made: tuple[Path, dict]) -> None:
    import numpy as np

    folder, figures = made
    judgements = 30 + 4 + 10 + 3 + 2 + 5 + 1  # a-1, end users, rm 7, a-2, two without an id, rm-b, the ranking
    latency = pq.read_table(folder / "figures" / "join_latency.parquet")
    assert sum(latency.column("judgements").to_pylist()) == judgements
    seconds = np.array([n % 10 + 1 for n in range(judgements)], dtype=float)  # as the helper stamps them
    assert figures["join_latency"]["summary"]["p50_s"] == pytest.approx(np.percentile(seconds, 50))
    assert figures["join_latency"]["summary"]["p99_s"] == pytest.approx(np.percentile(seconds, 99))
    coverage = figures["coverage"]["summary"]
    # requests 0..33 and 99, and the two inferences that never got feedback
    assert (coverage["judgements"], coverage["inferences"]) == (judgements, 35 + 2)
    health = figures["health"]
    assert health["title"].endswith("per 6 hours (share of all)")  # a day of records in at most 15 buckets
    assert (health["summary"]["no_feedback"], health["summary"]["dead_letter"]) == ("2 (3.4%)", "1 (1.7%)")


def test_a_report_filtered_by_more_than_dates_says_its_health_rates_are_not_filtered(tmp_path: Path) -> None:
    from preflog.report.health import NOT_FILTERED

    report(known_log(tmp_path / "log"), tmp_path / "out", Selection(sources=("HUMAN_ANNOTATOR",)), rounds=10)
    figures = json.loads((tmp_path / "out" / "summary.json").read_text())["figures"]
    assert NOT_FILTERED in figures["health"]["notes"] and not figures["health"]["flags"]
    assert NOT_FILTERED in figures["coverage"]["notes"]
    assert figures["ab"]["summary"]["n"] == 35  # annotators only


def test_the_a_b_takes_the_later_version_as_b_as_people_number_versions() -> None:
    from preflog.report.models import version_order

    ids = ["m@1.10", "m@1.9", "m@1.9.1", "m@2026.11", "m@2026.10", "m@1.10-rc1", "m@v10", "m@v2", "m@2.0", "m@2.0b1"]
    assert sorted(ids, key=version_order) == [
        "m@1.9", "m@1.9.1", "m@1.10-rc1", "m@1.10", "m@2.0b1", "m@2.0", "m@2026.10", "m@2026.11", "m@v2", "m@v10"
    ]
