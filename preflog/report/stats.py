"""The pure statistics of the analytics report: rankings, intervals, agreement, length control and drift.

The fits work on aggregated arrays (a wins matrix, counts per time point), the rest is vectorised over the
pairs; only online Elo loops over them, each update depending on the previous one.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, overload

import numpy as np

__all__ = [
    "bootstrap_bradley_terry",
    "bradley_terry",
    "bt_to_elo",
    "cohen_kappa",
    "elo",
    "krippendorff_alpha",
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


def _reaches_all(adjacency: np.ndarray) -> bool:
    """Whether every node is reachable from node 0 along the (boolean) adjacency matrix's edges."""
    seen = np.zeros(len(adjacency), dtype=bool)
    seen[0] = True
    frontier = seen.copy()
    while frontier.any():
        frontier = adjacency[frontier].any(axis=0) & ~seen
        seen |= frontier
    return bool(seen.all())


def bradley_terry(wins: np.ndarray, prior: float = 0.5, max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry log-strengths from a wins matrix (wins[i, j] = times i beat j), centred to mean 0.

    MM algorithm (Hunter 2004). `prior` adds that many pseudo-wins each way between every pair that met (or
    to every pair when the comparison graph is disconnected) so that undefeated or winless models stay finite.
    Returns natural-log strengths; P(i beats j) = 1 / (1 + exp(s_j - s_i)).

    Raises:
        ValueError: if `wins` is not a square non-negative matrix, or if with `prior` 0 the maximum likelihood
            estimate does not exist (some group of models never lost to the others: Hunter's condition).
    """
    w = np.array(wins, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or (w < 0).any() or prior < 0:
        raise ValueError("wins must be a square matrix of non-negative counts and prior must be >= 0")
    n = len(w)
    if n < 2:
        return np.zeros(n)
    np.fill_diagonal(w, 0.0)
    if prior > 0:
        met = (w + w.T) > 0
        mask = met if _reaches_all(met) else ~np.eye(n, dtype=bool)
        w = w + prior * mask
    beats = w > 0
    if not (_reaches_all(beats) and _reaches_all(beats.T)):
        raise ValueError("no finite Bradley-Terry fit (some models never lost or never won): use prior > 0")
    games = w + w.T
    total_wins = w.sum(axis=1)
    s = np.zeros(n)
    for _ in range(max_iter):
        p = np.exp(s)
        p_new = total_wins / (games / (p[:, None] + p[None, :])).sum(axis=1)
        s_new = np.log(p_new)
        s_new -= s_new.mean()
        done = np.max(np.abs(s_new - s)) < tol
        s = s_new
        if done:
            break
    return s


def bootstrap_bradley_terry(
    winners: np.ndarray, losers: np.ndarray, n: int, rounds: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low, high) of each model's log-strength (Bradley-Terry, default prior).

    `winners` and `losers` are the model indices (0..n-1) of each pair. Resampling the pairs with replacement
    is drawing a multinomial over the (winner, loser) cells with their observed frequencies, so each of the
    `rounds` rounds (np.random.default_rng(seed)) is one draw over the cells of np.bincount(winners * n + losers):
    the same distribution as resampling the pairs one by one, at a cost independent of the number of pairs.
    """
    winners, losers = np.asarray(winners, dtype=np.int64), np.asarray(losers, dtype=np.int64)
    if winners.shape != losers.shape or winners.ndim != 1 or len(winners) == 0:
        raise ValueError("winners and losers must be non-empty 1-d arrays of the same length")
    if min(winners.min(), losers.min()) < 0 or max(winners.max(), losers.max()) >= n:
        raise ValueError(f"model indices must be in 0..{n - 1}")
    _z(level)
    counts = np.bincount(winners * n + losers, minlength=n * n)
    cells = np.flatnonzero(counts)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(winners), counts[cells] / len(winners), size=rounds)
    fits = np.empty((rounds, n))
    for r in range(rounds):
        resampled = np.zeros(n * n)
        resampled[cells] = draws[r]
        fits[r] = bradley_terry(resampled.reshape(n, n))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(fits, [tail, 1.0 - tail], axis=0)
    return low, high


def elo(
    winners: np.ndarray, losers: np.ndarray, n: int, k: float = 4.0, base: float = 1000.0, scale: float = 400.0
) -> np.ndarray:
    """Online Elo ratings after playing the games in the given order (the classic update).

    Each game moves the winner up and the loser down by k * (1 - E), E = 1 / (1 + 10 ** ((R_l - R_w) / scale))
    being the winner's expected score; every model starts at `base`.
    """
    ratings = [float(base)] * n
    for w, lo in zip(np.asarray(winners).tolist(), np.asarray(losers).tolist(), strict=True):
        step = k * (1.0 - 1.0 / (1.0 + 10.0 ** ((ratings[lo] - ratings[w]) / scale)))
        ratings[w] += step
        ratings[lo] -= step
    return np.array(ratings)


def bt_to_elo(strengths: np.ndarray, base: float = 1000.0, scale: float = 400.0) -> np.ndarray:
    """Log-strengths on the Elo scale: base + scale * s / ln(10)."""
    return base + scale * np.asarray(strengths, dtype=float) / math.log(10.0)


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
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    weighted = counts / (m - 1)[:, None]
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


def length_controlled_win_rate(wins: np.ndarray, length_delta: np.ndarray) -> dict[str, Any]:
    """AlpacaEval-style length control: the win rate had both answers been of the same length.

    Fits P(win) = sigmoid(b0 + b1 * tanh(length_delta / sd(length_delta))) on per-comparison outcomes (wins
    0/1, or 0.5 for a tie; length_delta = len(A) - len(B) in characters; sd with ddof 0). Returns
    {"raw": mean(wins), "length_controlled": sigmoid(b0), "length_coefficient": b1, "n": len(wins)}.
    """
    y = np.asarray(wins, dtype=float)
    delta = np.asarray(length_delta, dtype=float)
    if y.shape != delta.shape or y.ndim != 1:
        raise ValueError("wins and length_delta must be 1-d arrays of the same length")
    if len(y) == 0:
        return {"raw": math.nan, "length_controlled": math.nan, "length_coefficient": math.nan, "n": 0}
    sd = float(delta.std())
    feature = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    beta, _ = logistic_fit(np.column_stack([np.ones_like(y), feature]), y)
    lc = float(_sigmoid(np.array(beta[0])))
    return {"raw": float(y.mean()), "length_controlled": lc, "length_coefficient": float(beta[1]), "n": len(y)}


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
