"""Model against model: a Bradley-Terry and Elo leaderboard, the win-rate matrix, and A/B tests of two versions.

Only pairs whose chosen and rejected answers come from different models or versions
(``chosen_id != rejected_id``, arena-style requests) compare models; the counts are
aggregated by DuckDB and the fits run on the small wins matrix (online Elo, sequential, takes the
games from DuckDB in batches).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .data import Inputs
from .figure import Figure
from .ranking import bootstrap_wins, bradley_terry, bt_to_elo, elo_batches
from .stats import length_controlled_win_rate, win_rate

__all__ = ["ab_tests", "leaderboard"]

_CROSS = "chosen_id <> rejected_id"
#: what the leaderboard's strengths are (the note under it)
PRIOR = ("strength: a Bradley-Terry fit with a prior of one extra game between every two models that met, won "
         "half by each side (between every two models when some never met others), so that a model that never "
         "lost or never won keeps a finite strength; elo: online Elo (K = 4) over the pairs in time order")  # fmt: skip


def _wins(inputs: Inputs) -> tuple[list[str], np.ndarray]:
    """The models that met, and the wins matrix of their cross-model pairs (wins[i, j] = times i beat j)."""
    counts = inputs.rows(f"SELECT chosen_id, rejected_id, count(*) FROM pairs WHERE {_CROSS} GROUP BY ALL")
    models = sorted({m for c in counts for m in c[:2]})
    index = {m: i for i, m in enumerate(models)}
    wins = np.zeros((len(models), len(models)))
    for winner, loser, n in counts:
        wins[index[winner], index[loser]] = n
    return models, wins


def _online_elo(inputs: Inputs, models: list[str]) -> np.ndarray:
    """Online Elo over the cross-model pairs in event-time order, streamed from DuckDB in batches of indices."""
    reader = inputs.batches(
        f"""SELECT list_position($1::VARCHAR[], chosen_id) - 1 AS winner,
                   list_position($1::VARCHAR[], rejected_id) - 1 AS loser
            FROM pairs WHERE {_CROSS} ORDER BY feedback_time, pair_id""",
        models,
    )
    games = ((b.column(0).to_numpy(), b.column(1).to_numpy()) for b in reader)
    return elo_batches(games, len(models))


def leaderboard(inputs: Inputs, rounds: int = 200, seed: int = 0) -> tuple[Figure, Figure]:
    """The leaderboard (Bradley-Terry strength on the Elo scale with a bootstrap interval, and online Elo).

    The strengths are :func:`~.ranking.bradley_terry` with its prior: half a win each way between every two models
    that met (one extra game, split), so that a model that never lost (or never won) has a finite strength.
    """
    models, wins = _wins(inputs)
    n = len(models)
    title = "Leaderboard: Bradley-Terry strength (Elo scale, 95% bootstrap interval)"
    board = Figure("leaderboard", title, pa.table({}))
    matrix = Figure("win_matrix", "Win rate of the row model against the column model", pa.table({}))
    if n < 2:
        board.notes.append("fewer than two models compared against each other: no leaderboard")
        return board, matrix
    strength = bt_to_elo(bradley_terry(wins))
    low, high = (bt_to_elo(x) for x in bootstrap_wins(wins, rounds=rounds, seed=seed))
    ratings = _online_elo(inputs, models)
    order = np.argsort(-strength)
    board.table = pa.table(
        {
            "model": [models[i] for i in order],
            "strength": [round(float(strength[i]), 1) for i in order],
            "low": [round(float(low[i]), 1) for i in order],
            "high": [round(float(high[i]), 1) for i in order],
            "elo": [round(float(ratings[i]), 1) for i in order],
            "wins": [int(wins[i].sum()) for i in order],
            "losses": [int(wins[:, i].sum()) for i in order],
        }
    )
    board.notes.append(PRIOR)
    board.summary = {"models": n, "pairs": int(wins.sum()), "top": models[order[0]], "bootstrap_rounds": rounds}
    if len(order) > 1 and low[order[0]] <= high[order[1]]:
        first, second = models[order[0]], models[order[1]]
        board.notes.append(f"{first} and {second} overlap in their intervals: the order of the top two is not settled")
    cells = [
        (models[i], models[j], int(wins[i, j]), int(wins[i, j] + wins[j, i]))
        for i in order for j in order if i != j and wins[i, j] + wins[j, i] > 0
    ]  # fmt: skip
    matrix.table = pa.table(
        {
            "model": [c[0] for c in cells],
            "opponent": [c[1] for c in cells],
            "wins": [c[2] for c in cells],
            "pairs": [c[3] for c in cells],
            "win_rate": [round(c[2] / c[3], 4) for c in cells],
        }
    )
    return board, matrix


def _headline(inputs: Inputs, a: str | None, b: str | None) -> tuple[str, str] | None:
    """The two model ids to test: the ones asked for, else the most compared two versions of one model."""
    if a and b:
        return a, b
    met = inputs.rows(
        f"""SELECT least(chosen_id, rejected_id) AS x, greatest(chosen_id, rejected_id) AS y, count(*) AS n,
                   split_part(x, '@', 1) = split_part(y, '@', 1) AS same_model
            FROM pairs WHERE {_CROSS} GROUP BY ALL ORDER BY same_model DESC, n DESC, x, y LIMIT 1"""
    )
    if not met:
        return None
    x, y = sorted(met[0][:2], key=version_order)
    return x, y  # B is the later version ("1.10" after "1.9")


_PRE_RELEASE = {"a", "alpha", "b", "beta", "c", "rc", "pre", "preview", "dev"}


def version_order(model_id: str) -> tuple[str, list[tuple[float, int | str]]]:
    """A sort key of ``name@version`` that orders versions as people do.

    1.9 before 1.10, v2 before v10, 2026.10 before 2026.11, and a pre-release before its release
    (1.10-rc1 before 1.10, 2.0b1 before 2.0).
    """
    name, _, version = model_id.partition("@")
    parts: list[tuple[float, int | str]] = []
    for token in re.findall(r"\d+|[A-Za-z]+", version):
        if token.isdigit():
            parts.append((1, int(token)))
        else:
            parts.append((0 if token.lower() in _PRE_RELEASE else 2, token.lower()))
    return name, [*parts, (0.5, "")]  # the end of a version sorts after a pre-release tag, before more numbers


def ab_tests(inputs: Inputs, a: str | None = None, b: str | None = None) -> Figure:
    """Win rate of ``b`` over ``a`` per feedback source (and overall), raw and length-controlled."""
    figure = Figure("ab", "A/B: win rate of B over A, by feedback source (95% Wilson interval)", pa.table({}))
    pair = _headline(inputs, a, b)
    if pair is None:
        figure.notes.append("no two models or versions were compared against each other: no A/B test")
        return figure
    a, b = pair
    games = inputs.table(  # one row per source, outcome and length difference: bounded by the answers' lengths
        f"""SELECT source, (chosen_id = ?) AS b_won,
                   CASE WHEN chosen_id = ? THEN chosen_len - rejected_len ELSE rejected_len - chosen_len END AS delta,
                   count(*) AS n
            FROM pairs WHERE {_CROSS} AND least(chosen_id, rejected_id) = least(?, ?)
                 AND greatest(chosen_id, rejected_id) = greatest(?, ?)
            GROUP BY ALL ORDER BY source, b_won, delta""",
        b, b, a, b, a, b,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    for source in ["ALL", *sorted(set(games.column("source").to_pylist()))]:
        part = games if source == "ALL" else games.filter(pc.equal(games.column("source"), source))
        won = part.column("b_won").to_numpy(zero_copy_only=False).astype(float)
        counts = part.column("n").to_numpy().astype(float)
        delta = part.column("delta").to_numpy(zero_copy_only=False).astype(float)
        n = int(counts.sum())
        result = win_rate(int(counts @ won), n)
        lc = length_controlled_win_rate(won, delta, counts=counts)
        rows.append({"source": source, **result, "length_controlled": lc["length_controlled"]})
        if not result["decided"]:
            figure.notes.append(f"{source}: {n} comparisons is too small a sample to tell {a} and {b} apart")
    figure.table = pa.Table.from_pylist(rows)
    overall = rows[0]
    figure.summary = {"a": a, "b": b, **{k: overall[k] for k in ("rate", "low", "high", "n", "decided")}}
    figure.summary["length_controlled"] = overall["length_controlled"]
    figure.title = f"A/B: {b} against {a}, win rate by feedback source (95% Wilson interval)"
    return figure
