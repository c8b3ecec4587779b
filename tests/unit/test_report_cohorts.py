"""The report's Cohorts section: each subject against everyone else, checked against figures computed here."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from preflog.dataset.select import Selection
from preflog.privacy.subjects import label, labels
from preflog.report.build import report
from preflog.report.cohorts import newcombe_interval

from .dataset_helpers import rows, write_table
from .report_helpers import NEW, OLD

#: user: (pairs whose longer answer won, pairs whose shorter won, arena pairs NEW won, arena pairs OLD won)
USERS = {"u1": (25, 5, 18, 2), "u2": (10, 20, 4, 16), "u3": (4, 0, 3, 0), "u4": (30, 0, 20, 0)}
NO_ANALYTICS = "u4"  # consents to training only: absent from the report


def _log(root: Path) -> str:
    pairs: list[tuple[str, str, str, str]] = []
    meta: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    for user, (longer, shorter, new, old) in USERS.items():
        for i in range(longer):
            pairs.append((f"{user} long {i}?", "a much longer answer", "short", "END_USER"))
            meta.append((user, None, None))
        for i in range(shorter):
            pairs.append((f"{user} short {i}?", "short", "a much longer answer", "END_USER"))
            meta.append((user, None, None))
        for i in range(new + old):  # equal lengths: not in the length measure
            pairs.append((f"{user} arena {i}?", "same", "same", "END_USER"))
            meta.append((user, NEW, OLD) if i < new else (user, OLD, NEW))
    records = rows(pairs)
    for r, (user, chosen, rejected) in zip(records, meta, strict=True):
        r["context"] = {**r["context"], "user_id": user}
        r["chosen_model"], r["rejected_model"] = chosen, rejected
        if user == NO_ANALYTICS:
            r["inference_metadata"] = {"preflog.consent": "training"}
    return write_table(root, "pairs", records)


def _who(user: str) -> str:
    return "s-" + hashlib.sha256(label(user).encode()).hexdigest()[:12]


def _wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def _figures(folder: Path) -> dict[str, list[dict[str, Any]]]:
    names = ("subject_length_preference", "subject_model_agreement")
    return {n: json.loads((folder / "figures" / f"{n}.json").read_text()) for n in names}


def test_each_subject_is_compared_with_everyone_else(tmp_path: Path) -> None:
    url = _log(tmp_path / "log")
    done = report(url, tmp_path / "out", Selection())
    figures = _figures(tmp_path / "out")
    seen = {u: v for u, v in USERS.items() if u != NO_ANALYTICS}
    by = {r["cohort"]: r for r in figures["subject_length_preference"]}
    assert set(by) == {_who("u1"), _who("u2"), "others"}  # u3 has 4 pairs: pooled; u4 gave no analytics consent
    assert by["others"]["subjects"] == 1 and by["others"]["pairs"] == 4
    total_k = sum(v[0] for v in seen.values())
    total_n = sum(v[0] + v[1] for v in seen.values())
    for cohort, (k, n) in {_who("u1"): (25, 30), _who("u2"): (10, 30), "others": (4, 4)}.items():
        r = by[cohort]
        rest_k, rest_n = total_k - k, total_n - n
        assert r["pairs"] == n and r["share"] == pytest.approx(k / n)
        assert r["population_share"] == pytest.approx(rest_k / rest_n) and r["population_pairs"] == rest_n
        assert (r["low"], r["high"]) == pytest.approx(_wilson(k, n))
        l1, u1 = _wilson(k, n)
        l2, u2 = _wilson(rest_k, rest_n)
        d = k / n - rest_k / rest_n
        low = d - math.sqrt((k / n - l1) ** 2 + (u2 - rest_k / rest_n) ** 2)
        high = d + math.sqrt((u1 - k / n) ** 2 + (rest_k / rest_n - l2) ** 2)
        assert (r["diff_low"], r["diff_high"]) == pytest.approx((low, high))
    assert done.meta["pairs"] == sum(sum(v) for v in seen.values())
    # u2 prefers the shorter answer (33%) where the others choose the longer one (29 of 34): flagged
    flags = " ".join(next(f for f in done.figures() if f.name == "subject_length_preference").flags)
    assert _who("u2") in flags and "u2" not in flags.replace(_who("u2"), "")

    agree = {r["cohort"]: r for r in figures["subject_model_agreement"]}
    # one model pair (acme@1 against acme@2): each cohort against the majority of every other arena pair
    new_total, all_total = sum(v[2] for v in seen.values()), sum(v[2] + v[3] for v in seen.values())
    expected_agreement = {}
    for cohort, (new, n) in {_who("u1"): (18, 20), _who("u2"): (4, 20), "others": (3, 3)}.items():
        rest_new, rest_n = new_total - new, all_total - n
        assert rest_new * 2 != rest_n  # no even split in this log
        agreeing = new if rest_new * 2 > rest_n else n - new
        majority = max(rest_new, rest_n - rest_new) / rest_n
        r = agree[cohort]
        assert r["pairs"] == n and r["agreement"] == pytest.approx(agreeing / n)
        assert r["expected"] == pytest.approx(majority)
        assert (r["low"], r["high"]) == pytest.approx(_wilson(agreeing, n))
        expected_agreement[cohort] = agreeing / n
    assert expected_agreement[_who("u1")] == pytest.approx(2 / 20)  # the rest (u2, u3) prefer acme@1: u1 does not


def test_no_raw_id_reaches_the_report_and_a_subject_selection_narrows_it(tmp_path: Path) -> None:
    url = _log(tmp_path / "log")
    report(url, tmp_path / "out", Selection())
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html"):
            text = path.read_text()
            assert not any(f'"{u}"' in text or f">{u}<" in text for u in USERS), path
    only = report(url, tmp_path / "one", Selection(subjects=labels(["u1"], None)))
    assert only.meta["pairs"] == sum(USERS["u1"])
    assert only.meta["selection"]["subjects"] == (label("u1"),)


def test_newcombe_interval_contains_the_difference_and_is_nan_without_data() -> None:
    low, high = newcombe_interval(25, 30, 14, 34)
    assert low < 25 / 30 - 14 / 34 < high
    assert all(math.isnan(v) for v in newcombe_interval(1, 0, 3, 4))
