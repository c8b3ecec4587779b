"""The pure statistics of the analytics report: intervals, agreement, length control and drift, and rankings.

Everything works on aggregated counts (counts per time point, per length difference, per panel of verdicts),
never an array per pair. The rankings (Bradley-Terry, its bootstrap, online Elo) are in :mod:`.ranking`,
importable from here too.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, overload

import numpy as np

from .ranking import bootstrap_bradley_terry, bootstrap_wins, bradley_terry, bt_to_elo, elo, elo_batches

__all__ = [
    "bootstrap_bradley_terry",
    "bootstrap_wins",
    "bradley_terry",
    "bt_to_elo",
    "cohen_kappa",
    "elo",
    "elo_batches",
    "krippendorff_alpha",
    "krippendorff_alpha_counts",
    "length_controlled_win_rate",
    "logistic_fit",
    "trend",
    "wilson_interval",
    "win_rate",
]

RIDGE = 1e-6
_Arr = np.ndarray


def _z(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level (1.96 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@overload
def wilson_interval(successes: float, n: float, level: float = ...) -> tuple[float, float]: ...
@overload
def wilson_interval(successes: np.ndarray, n: np.ndarray | float, level: float = ...) -> tuple[_Arr, _Arr]: ...
@overload
def wilson_interval(successes: float, n: np.ndarray, level: float = ...) -> tuple[_Arr, _Arr]: ...
def wilson_interval(successes: Any, n: Any, level: float = 0.95) -> tuple[Any, Any]:
    """Wilson score interval for a proportion; (nan, nan) where n == 0. Works elementwise on arrays.

    Returns floats when both `successes` and `n` are scalars, arrays otherwise.
    """
    z = _z(level)
    x, m = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    if (x < 0).any() or (x > m).any():
        raise ValueError("successes must be between 0 and n")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / m
        shrink = 1.0 + z * z / m
        centre = (p + z * z / (2 * m)) / shrink
        half = z / shrink * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    empty = m == 0
    low = np.where(empty, np.nan, np.where(x == 0, 0.0, centre - half))  # exact bounds despite rounding
    high = np.where(empty, np.nan, np.where(x == m, 1.0, centre + half))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def win_rate(successes: int, n: int, level: float = 0.95) -> dict[str, Any]:
    """A win rate with its Wilson interval: {"rate", "low", "high", "n", "decided"}.

    `decided` is False when the interval contains 0.5 (too small a sample to tell), and when n == 0.
    """
    low, high = wilson_interval(successes, n, level)
    decided = n > 0 and not low <= 0.5 <= high
    return {"rate": successes / n if n else math.nan, "low": low, "high": high, "n": n, "decided": decided}


def cohen_kappa(table: np.ndarray) -> float:
    """Cohen's kappa from a square agreement table (rows: rater A's category, columns: rater B's).

    nan when chance agreement is 1 (both raters always used one and the same category).
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.sum() <= 0:
        raise ValueError("table must be a square matrix of counts with a positive total")
    total = t.sum()
    observed = np.trace(t) / total
    expected = float(t.sum(axis=1) @ t.sum(axis=0)) / total**2
    return math.nan if expected == 1.0 else float((observed - expected) / (1.0 - expected))


def krippendorff_alpha(units: list[list[Any]] | np.ndarray, level: str = "nominal") -> float:
    """Krippendorff's alpha for nominal data (level='nominal'), from the coincidence matrix (Krippendorff 2011).

    `units`: the values each unit received from its raters (missing values as None or nan, or omitted), or a
    reliability matrix (numpy array, raters x units, np.nan for missing); units with fewer than 2 values are
    ignored. nan when fewer than 2 values are pairable or all of them are the same (no variation).
    """
    if level != "nominal":
        raise ValueError(f"only level='nominal' is supported, not {level!r}")
    if isinstance(units, np.ndarray):
        units = [list(column) for column in np.atleast_2d(units).T]  # reliability matrix: raters x units
    codes: dict[Any, int] = {}
    unit_ids: list[int] = []
    value_ids: list[int] = []
    for u, values in enumerate(units):
        for v in values:
            if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
                continue
            unit_ids.append(u)
            value_ids.append(codes.setdefault(v.item() if isinstance(v, np.generic) else v, len(codes)))
    k = len(codes)
    cells = np.array(unit_ids, dtype=np.int64) * k + np.array(value_ids, dtype=np.int64)
    counts = np.bincount(cells, minlength=len(units) * k).reshape(len(units), k).astype(float)
    return krippendorff_alpha_counts(counts)


def krippendorff_alpha_counts(counts: np.ndarray, units: np.ndarray | None = None) -> float:
    """:func:`krippendorff_alpha` (nominal) from counts: ``counts[u, c]`` = raters who gave unit ``u`` category ``c``.

    ``units[u]`` (default 1) is how many units had that row of counts: a report aggregates its comparisons by
    their panel of verdicts (say 3 raters, 2 to 1) and passes one row per panel with its number of comparisons.
    """
    counts = np.asarray(counts, dtype=float)
    many = np.ones(len(counts)) if units is None else np.asarray(units, dtype=float)
    if counts.ndim != 2 or many.shape != (len(counts),) or (counts < 0).any() or (many < 0).any():
        raise ValueError("counts must be (units, categories) and units (rows,), both non-negative")
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m, many = counts[keep], m[keep], many[keep]
    weighted = counts / (m - 1)[:, None]
    if units is not None:
        weighted = weighted * many[:, None]
    coincidences = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidences.sum(axis=1)
    total = n_c.sum()
    disagreement = total - np.trace(coincidences)
    expected = total**2 - float(n_c @ n_c)
    if total < 2 or expected == 0:
        return math.nan
    return float(1.0 - (total - 1.0) * disagreement / expected)


def logistic_fit(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, max_iter: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression by IRLS/Newton (x includes its own intercept column); (coefficients, standard errors).

    `y` may hold proportions in [0, 1] with `weights` the number of trials behind each (binomial regression).
    A small ridge (1e-6 times the squared norm over 2) keeps separable data finite.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if x.ndim != 2 or y.shape != (len(x),) or w.shape != y.shape:
        raise ValueError("x must be (rows, columns) and y, weights (rows,)")
    ridge = RIDGE * np.eye(x.shape[1])
    beta, step = np.zeros(x.shape[1]), np.full(x.shape[1], np.inf)
    for iteration in range(max_iter + 1):  # the last pass only computes the Hessian at the final estimate
        mu = _sigmoid(x @ beta)
        hessian = x.T @ ((w * mu * (1.0 - mu))[:, None] * x) + ridge
        if iteration == max_iter or np.max(np.abs(step)) < 1e-10:
            break
        step = np.linalg.solve(hessian, x.T @ (w * (y - mu)) - ridge @ beta)
        beta = beta + step
    return beta, np.sqrt(np.diag(np.linalg.inv(hessian)))


def length_controlled_win_rate(
    wins: np.ndarray, length_delta: np.ndarray, counts: np.ndarray | None = None
) -> dict[str, Any]:
    """AlpacaEval-style length control: the win rate had both answers been of the same length.

    Fits P(win) = sigmoid(b0 + b1 * tanh(length_delta / sd(length_delta))) on per-comparison outcomes (wins
    0/1, or 0.5 for a tie; length_delta = len(A) - len(B) in characters; sd with ddof 0). Returns
    {"raw": mean(wins), "length_controlled": sigmoid(b0), "length_coefficient": b1, "n": len(wins)}.

    ``counts`` (default 1 each) says how many comparisons each (outcome, length_delta) row stands for: the
    same fit from aggregated rows (one per outcome and length difference), with the sd and mean weighted.
    """
    y = np.asarray(wins, dtype=float)
    delta = np.asarray(length_delta, dtype=float)
    if y.shape != delta.shape or y.ndim != 1 or (counts is not None and np.shape(counts) != y.shape):
        raise ValueError("wins, length_delta (and counts) must be 1-d arrays of the same length")
    weights = None if counts is None else np.asarray(counts, dtype=float)
    n = len(y) if weights is None else int(weights.sum())
    if n == 0:
        return {"raw": math.nan, "length_controlled": math.nan, "length_coefficient": math.nan, "n": 0}
    if weights is None:
        sd, raw = float(delta.std()), float(y.mean())
    else:
        mean = float(weights @ delta) / n
        sd, raw = math.sqrt(float(weights @ (delta - mean) ** 2) / n), float(weights @ y) / n
    feature = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    beta, _ = logistic_fit(np.column_stack([np.ones_like(y), feature]), y, weights=weights)
    lc = float(_sigmoid(np.array(beta[0])))
    return {"raw": raw, "length_controlled": lc, "length_coefficient": float(beta[1]), "n": n}


def trend(times: np.ndarray, successes: np.ndarray, totals: np.ndarray) -> dict[str, Any]:
    """Is a proportion drifting over time? A binomial logistic regression of successes/totals on time.

    `times` in days (centred here); points with totals 0 are left out. Returns {"slope_per_day": the log-odds
    slope, "p_value": its two-sided Wald p-value, "flagged": p_value < 0.01 with at least 3 time points}; slope
    and p-value are nan with fewer than 2 distinct time points.
    """
    t, s, m = (np.asarray(a, dtype=float) for a in (times, successes, totals))
    if not t.shape == s.shape == m.shape or t.ndim != 1:
        raise ValueError("times, successes and totals must be 1-d arrays of the same length")
    keep = m > 0
    t, s, m = t[keep], s[keep], m[keep]
    points = len(np.unique(t))
    if points < 2:
        return {"slope_per_day": math.nan, "p_value": math.nan, "flagged": False}
    beta, se = logistic_fit(np.column_stack([np.ones_like(t), t - t.mean()]), s / m, weights=m)
    p_value = math.erfc(abs(beta[1] / se[1]) / math.sqrt(2.0))
    return {"slope_per_day": float(beta[1]), "p_value": p_value, "flagged": bool(p_value < 0.01 and points >= 3)}
