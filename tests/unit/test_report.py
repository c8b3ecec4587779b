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
    # annotators: a-1 gives NEW 21 of 30, a-2 gives it 2 of 3 (requests 0 and 1); end users 3 of 4
    rows = {r["source"]: r for r in json.loads((folder / "figures" / "ab.json").read_text())}
    assert (rows["HUMAN_ANNOTATOR"]["n"], rows["HUMAN_ANNOTATOR"]["rate"]) == (30 + 3, pytest.approx(23 / 33))
    assert (rows["END_USER"]["n"], rows["END_USER"]["rate"]) == (4, 0.75) and not rows["END_USER"]["decided"]
    low, high = wilson_interval(23, 33)
    human = rows["HUMAN_ANNOTATOR"]
    assert (human["low"], human["high"]) == (pytest.approx(low), pytest.approx(high))
    assert any("END_USER: 4 comparisons is too small" in n for n in figures["ab"]["notes"])
    board = pq.read_table(folder / "figures" / "leaderboard.parquet").to_pylist()
    assert [r["model"] for r in board] == ["acme@2", "acme@1"]
    assert board[0]["low"] <= board[0]["strength"] <= board[0]["high"]


def test_length_position_and_agreement_are_the_hand_counts(made: tuple[Path, dict]) -> None:
    _, figures = made
    # a-1: NEW (20 characters) over OLD (10) on 0..20, OLD over NEW (20) on 21..23, OLD over NEW (5) on 24..29:
    # 21 + 6 longer chosen of 30; a-2: NEW on 0 and 1 (longer), OLD on 2 (shorter): 2 of 3
    assert figures["length_bias"]["summary"]["source:HUMAN_ANNOTATOR"] == pytest.approx(29 / 33, abs=1e-4)
    assert figures["length_bias"]["summary"]["source:END_USER"] == pytest.approx(3 / 4)
    rm = figures["rm_agreement"]["summary"]
    # the reward model against both annotators' judgements of requests 0..9: a-1 on 10 (8 agree), a-2 on 3 (2 agree)
    assert (rm["comparisons"], rm["accuracy"]) == (13, pytest.approx(10 / 13))
    # NEW is candidate 0. Human first / RM first: a-1 on 0..7 and a-2 on 0, 1 (10); human first / RM second:
    # a-1 on 8, 9 (2); human second / RM first: a-2 on 2 (1); none both second. p_o = 10/13,
    # p_e = (12/13)(11/13) + (1/13)(2/13) = 134/169, kappa = (130/169 - 134/169) / (35/169) = -4/35
    assert rm["kappa"] == pytest.approx(-4 / 35)
    humans = figures["human_agreement"]["summary"]
    assert (humans["comparisons"], humans["unanimous"]) == (3, pytest.approx(2 / 3))


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
    judgements = 30 + 4 + 10 + 3  # a-1, end users, the reward model, a-2: one feedback each
    latency = pq.read_table(folder / "figures" / "join_latency.parquet")
    assert sum(latency.column("judgements").to_pylist()) == judgements
    seconds = np.array([n % 10 + 1 for n in range(judgements)], dtype=float)  # as the helper stamps them
    assert figures["join_latency"]["summary"]["p50_s"] == pytest.approx(np.percentile(seconds, 50))
    assert figures["join_latency"]["summary"]["p99_s"] == pytest.approx(np.percentile(seconds, 99))
    coverage = figures["coverage"]["summary"]
    assert (coverage["judgements"], coverage["inferences"]) == (judgements, 34)  # requests 0..33


def test_the_a_b_takes_the_later_version_as_b_as_people_number_versions() -> None:
    from preflog.report.models import version_order

    ids = ["m@1.10", "m@1.9", "m@1.9.1", "m@2026.11", "m@2026.10", "m@1.10-rc1"]
    assert sorted(ids, key=version_order) == ["m@1.9", "m@1.9.1", "m@1.10", "m@1.10-rc1", "m@2026.10", "m@2026.11"]
