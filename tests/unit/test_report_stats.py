"""The report's statistics against hand-computed, textbook or published values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from preflog.report.stats import (
    bootstrap_bradley_terry,
    bradley_terry,
    bt_to_elo,
    cohen_kappa,
    elo,
    krippendorff_alpha,
    length_controlled_win_rate,
    logistic_fit,
    trend,
    wilson_interval,
    win_rate,
)


def _bt_pairs(strengths: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """M random pairs of distinct models, the winner drawn from the Bradley-Terry model with these strengths."""
    rng = np.random.default_rng(seed)
    n = len(strengths)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    a_wins = rng.random(m) < 1.0 / (1.0 + np.exp(strengths[b] - strengths[a]))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def test_bradley_terry_two_models_by_hand() -> None:
    # L = p^3 q / (p + q)^4 is maximal at p / (p + q) = 3/4: s_0 - s_1 = ln 3, centred at +-ln(3)/2
    s = bradley_terry(np.array([[0, 3], [1, 0]]), prior=0)
    assert s == pytest.approx([math.log(3) / 2, -math.log(3) / 2], abs=1e-9)


def test_bradley_terry_recovers_known_strengths() -> None:
    truth = np.array([0.8, 0.0, -0.8])
    games = 1_000_000  # per pair: wins[i, j] = games * P(i beats j), rounded
    wins = np.round(games / (1.0 + np.exp(truth[None, :] - truth[:, None]))) * (1 - np.eye(3))
    assert bradley_terry(wins, prior=0) == pytest.approx(truth, abs=1e-3)


def test_bradley_terry_prior_keeps_undefeated_and_disconnected_models_finite() -> None:
    undefeated = np.array([[0, 5, 0], [0, 0, 2], [0, 1, 0]])
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(undefeated, prior=0)
    s = bradley_terry(undefeated)
    assert np.isfinite(s).all() and s[0] > s[1] > s[2] and s.mean() == pytest.approx(0, abs=1e-12)
    # 0 and 1 met, 2 and 3 met, the two groups never did: the prior then joins every pair
    disconnected = np.array([[0, 4, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    s = bradley_terry(disconnected)
    assert np.isfinite(s).all() and s[0] > s[2] > s[1] and s[2] == pytest.approx(s[3])


def test_bootstrap_bradley_terry_contains_estimate_shrinks_and_is_reproducible() -> None:
    truth = np.array([1.0, 0.3, 0.0, -1.3])
    widths = []
    for m in (500, 20_000):
        winners, losers = _bt_pairs(truth, m, seed=m)
        estimate = bradley_terry(np.bincount(winners * 4 + losers, minlength=16).reshape(4, 4))
        low, high = bootstrap_bradley_terry(winners, losers, 4, rounds=200, seed=7)
        assert (low <= estimate).all() and (estimate <= high).all()
        widths.append(high - low)
        again = bootstrap_bradley_terry(winners, losers, 4, rounds=200, seed=7)
        assert np.array_equal(again[0], low) and np.array_equal(again[1], high)
        assert not np.array_equal(bootstrap_bradley_terry(winners, losers, 4, rounds=200, seed=8)[0], low)
    assert (widths[1] < widths[0] / 3).all()  # 40 times the pairs: about sqrt(40) ~ 6 times narrower


def test_elo_two_games_by_hand() -> None:
    # game 1, 0 beats 1 at 1000-1000: E = 0.5, +-32 * 0.5 -> 1016, 984
    # game 2, 1 beats 0: E_1 = 1 / (1 + 10 ** (32 / 400)) = 0.454078, step = 32 * 0.545922 = 17.4695
    ratings = elo(np.array([0, 1]), np.array([1, 0]), 3, k=32)
    assert ratings == pytest.approx([998.5305, 1001.4695, 1000.0], abs=1e-4)


def test_bt_to_elo() -> None:
    # a log-strength of ln 10 is odds of 10 to 1 against a model at 0: 400 Elo points
    assert bt_to_elo(np.array([math.log(10), 0.0, -math.log(10)])) == pytest.approx([1400, 1000, 600])
    assert bt_to_elo(np.array([0.0]), base=1500, scale=200) == pytest.approx([1500])


def test_wilson_interval_published_value() -> None:
    # 8 of 10 at 95%: (0.4902, 0.9433), e.g. Newcombe (1998) method 3 / any Wilson table
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert isinstance(low, float)
    lows, highs = wilson_interval(np.array([8, 0, 0]), np.array([10, 10, 0]))
    assert lows[0] == pytest.approx(0.4902, abs=1e-4) and lows[1] == 0.0
    assert highs[1] == pytest.approx(0.2775, abs=1e-4)  # 0 of 10: z^2 / (n + z^2)
    assert math.isnan(lows[2]) and math.isnan(highs[2])
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_win_rate_decided() -> None:
    small = win_rate(8, 10)
    assert small["rate"] == 0.8 and small["n"] == 10 and small["decided"] is False  # 0.49 < 0.5
    large = win_rate(80, 100)
    assert large["decided"] is True and large["low"] > 0.5
    empty = win_rate(0, 0)
    assert empty["decided"] is False and math.isnan(empty["rate"])


def test_cohen_kappa_textbook_table() -> None:
    # Wikipedia's example: p_o = 35/50 = 0.7, p_e = (25 * 30 + 25 * 20) / 50^2 = 0.5, kappa = 0.2 / 0.5
    assert cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)
    assert cohen_kappa(np.array([[10, 0], [0, 5]])) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(np.array([[7, 0], [0, 0]])))


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers x 12 units
_NAN = math.nan
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, _NAN, _NAN, _NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _NAN, 3],
        [_NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _NAN],
    ]
)


def test_krippendorff_alpha_published_example() -> None:
    # the paper: n_c = 9, 13, 10, 5, 3 pairable values (n = 40), coincidences off the diagonal (c < k) sum to 4,
    # alpha_nominal = 1 - (n - 1) * 4 / sum_{c<k} n_c n_k = 1 - 39 * 4 / 608 = 0.743
    assert krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(1 - 39 * 4 / 608)
    assert krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(0.743, abs=5e-4)
    # the same data as units (values per unit, missing ones omitted or None), with categories as strings
    units = [[str(int(v)) if not math.isnan(v) else None for v in column] for column in KRIPPENDORFF_2011.T]
    units = [[v for v in unit if v is not None] if i % 2 else unit for i, unit in enumerate(units)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_perfect_agreement_and_edge_cases() -> None:
    assert krippendorff_alpha([["a", "a"], ["b", "b", "b"], ["c", None, "c"], ["a"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))  # no variation: undefined
    assert math.isnan(krippendorff_alpha([["a"], ["b"]]))  # nothing pairable
    # two units, two coders, total disagreement: o = [[0, 2], [2, 0]], n_c = 2, 2: 1 - 3 * 4 / 8
    assert krippendorff_alpha([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        krippendorff_alpha([["a", "b"]], level="interval")


def test_logistic_fit_single_binary_covariate_closed_form() -> None:
    # group 0: 30 of 100, group 1: 60 of 80 -> b0 = logit(0.3), b1 = log odds ratio; SEs by Woolf's formula
    x = np.array([[1.0, 0.0]] * 100 + [[1.0, 1.0]] * 80)
    y = np.array([1.0] * 30 + [0.0] * 70 + [1.0] * 60 + [0.0] * 20)
    expected = [math.log(30 / 70), math.log(60 / 20) - math.log(30 / 70)]
    expected_se = [math.sqrt(1 / 30 + 1 / 70), math.sqrt(1 / 30 + 1 / 70 + 1 / 60 + 1 / 20)]
    beta, se = logistic_fit(x, y)
    assert beta == pytest.approx(expected, rel=1e-6) and se == pytest.approx(expected_se, rel=1e-6)
    # the same table as four weighted rows
    beta, se = logistic_fit(
        np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]),
        np.array([1.0, 0.0, 1.0, 0.0]),
        weights=np.array([30.0, 70.0, 60.0, 20.0]),
    )
    assert beta == pytest.approx(expected, rel=1e-6) and se == pytest.approx(expected_se, rel=1e-6)


def test_logistic_fit_separable_data_stays_finite() -> None:
    beta, se = logistic_fit(np.array([[1.0, -1.0], [1.0, 1.0]]), np.array([0.0, 1.0]))
    assert np.isfinite(beta).all() and np.isfinite(se).all() and beta[1] > 5


def test_length_controlled_win_rate_removes_a_length_bias() -> None:
    rng = np.random.default_rng(3)
    delta = rng.normal(400, 300, 50_000)  # A is usually the longer answer; wins depend on length only
    p = 1 / (1 + np.exp(-3 * np.tanh(delta / delta.std())))
    result = length_controlled_win_rate((rng.random(len(delta)) < p).astype(float), delta)
    assert result["raw"] > 0.8 and result["n"] == 50_000
    assert result["length_controlled"] == pytest.approx(0.5, abs=0.03)
    assert result["length_coefficient"] == pytest.approx(3, abs=0.2)


def test_length_controlled_win_rate_without_a_length_effect() -> None:
    rng = np.random.default_rng(4)
    delta = rng.normal(400, 300, 50_000)
    result = length_controlled_win_rate((rng.random(len(delta)) < 0.7).astype(float), delta)
    assert result["raw"] == pytest.approx(0.7, abs=0.01)
    assert result["length_controlled"] == pytest.approx(0.7, abs=0.02)
    assert result["length_coefficient"] == pytest.approx(0, abs=0.1)
    same = length_controlled_win_rate(np.array([1.0, 0.0, 1.0, 1.0]), np.zeros(4))
    assert same["raw"] == 0.75 and same["length_controlled"] == pytest.approx(0.75, abs=1e-5)  # ridge: 1e-6


def test_trend_two_points_by_hand_and_too_few_points() -> None:
    # day 0: 50 of 100, day 10: 70 of 100 -> slope = (logit 0.7 - logit 0.5) / 10, SE = sqrt(sum 1/cells) / 10
    result = trend(np.array([0.0, 10.0]), np.array([50, 70]), np.array([100, 100]))
    slope = math.log(70 / 30) / 10
    se = math.sqrt(1 / 50 + 1 / 50 + 1 / 70 + 1 / 30) / 10
    assert result["slope_per_day"] == pytest.approx(slope, rel=1e-6)
    assert result["p_value"] == pytest.approx(math.erfc(slope / se / math.sqrt(2)), rel=1e-5)
    assert result["p_value"] < 0.01 and result["flagged"] is False  # only 2 time points
    single = trend(np.array([3.0, 3.0, 5.0]), np.array([1, 2, 0]), np.array([4, 4, 0]))
    assert math.isnan(single["slope_per_day"]) and single["flagged"] is False


def test_trend_flat_is_not_flagged_and_a_drift_is() -> None:
    days = np.arange(30.0)
    totals = np.full(30, 1000)
    flat = trend(days, np.full(30, 600), totals)
    assert flat["slope_per_day"] == pytest.approx(0, abs=1e-9) and flat["p_value"] == pytest.approx(1.0)
    assert flat["flagged"] is False
    noisy = trend(days, np.random.default_rng(5).binomial(totals, 0.6), totals)
    assert noisy["flagged"] is False
    drift = trend(days, np.round(totals * np.linspace(0.5, 0.7, 30)).astype(int), totals)
    assert drift["flagged"] is True and drift["slope_per_day"] > 0 and drift["p_value"] < 1e-10
