"""Model rankings from a wins matrix: Bradley-Terry strengths with a bootstrap interval, and online Elo.

Every function takes aggregated counts (wins[i, j] = times model i beat model j), except online Elo, whose
updates depend on each other: it takes the games in order, in batches (:func:`elo_batches`), so a caller
streams them from DuckDB without holding them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["bootstrap_bradley_terry", "bootstrap_wins", "bradley_terry", "bt_to_elo", "elo", "elo_batches"]


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
    counts = np.bincount(winners * n + losers, minlength=n * n)
    return bootstrap_wins(counts.reshape(n, n), rounds=rounds, seed=seed, level=level)


def bootstrap_wins(
    wins: np.ndarray, rounds: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bootstrap_bradley_terry` from the wins matrix (wins[i, j] = times i beat j) instead of the pairs.

    Resamples the aggregated counts (a multinomial draw over the matrix's cells with the observed
    frequencies, as many pairs as the matrix holds); the same intervals as from the pairs themselves.
    """
    counts = np.asarray(wins)
    n = len(counts)
    if counts.ndim != 2 or counts.shape != (n, n) or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("wins must be a square matrix of non-negative whole counts")
    counts = counts.astype(np.int64).ravel()
    total = int(counts.sum())
    if total == 0:
        raise ValueError("wins must hold at least one game")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    cells = np.flatnonzero(counts)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, counts[cells] / total, size=rounds)
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
    return elo_batches([(winners, losers)], n, k=k, base=base, scale=scale)


def elo_batches(
    games: Iterable[tuple[np.ndarray, np.ndarray]], n: int, k: float = 4.0, base: float = 1000.0, scale: float = 400.0
) -> np.ndarray:
    """:func:`elo` over the games in batches of (winners, losers), in order: memory of one batch, the same ratings."""
    ratings = [float(base)] * n
    for winners, losers in games:
        for w, lo in zip(np.asarray(winners).tolist(), np.asarray(losers).tolist(), strict=True):
            step = k * (1.0 - 1.0 / (1.0 + 10.0 ** ((ratings[lo] - ratings[w]) / scale)))
            ratings[w] += step
            ratings[lo] -= step
    return np.array(ratings)


def bt_to_elo(strengths: np.ndarray, base: float = 1000.0, scale: float = 400.0) -> np.ndarray:
    """Log-strengths on the Elo scale: base + scale * s / ln(10)."""
    return base + scale * np.asarray(strengths, dtype=float) / math.log(10.0)
