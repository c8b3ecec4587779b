"""Bias monitors: does the longer answer win because it is longer, and does a position win because it is first?

* **length**: the share of pairs whose chosen answer is the longer one (pairs of equal length
  left out), per source and per model, and over time per source with a drift test; 0.5 is no
  preference. A source far above the others is a reward-hacking risk: a model trained on it
  learns to write more.
* **position**: the win rate of each candidate index (times chosen / times in a pair), per source;
  a judge without position bias gives every index about the same rate.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .data import Inputs
from .figure import Figure
from .stats import trend, wilson_interval

__all__ = ["bucket", "length_bias", "position_bias"]


#: the widths the over-time figures choose from, in seconds, with their names
WIDTHS = ((1, "second"), (5, "5 seconds"), (15, "15 seconds"), (60, "minute"), (300, "5 minutes"),
          (900, "15 minutes"), (3600, "hour"), (6 * 3600, "6 hours"), (86400, "day"), (7 * 86400, "week"))  # fmt: skip


#: the confidence of a flag: 99%, as the drift test's p < 0.01 (a report tests many sources at once, and the
#: pairs of one ranking are not independent)
FLAG_LEVEL = 0.99


def bucket(inputs: Inputs, buckets: int = 15, times: str = "SELECT feedback_time AS t FROM pairs") -> tuple[str, str]:
    """The time bucket of an over-time figure: the narrowest width giving at most ``buckets`` over ``times``.

    ``times`` is a query of every timestamp (column ``t``) the figure plots. Returns a SQL expression of a
    timestamp column named ``{column}`` (``str.format``) and the width's name.
    """
    span = inputs.rows(f"SELECT epoch(max(t)) - epoch(min(t)) FROM ({times})")[0][0] or 0
    seconds, name = next(((w, n) for w, n in WIDTHS if span / w <= buckets), WIDTHS[-1])
    return f"time_bucket(INTERVAL '{seconds} seconds', {{column}})", name


def _seconds(name: str) -> int:
    return next(w for w, n in WIDTHS if n == name)


def _shares(inputs: Inputs, by: str) -> pa.Table:
    return inputs.table(
        f"""SELECT {by} AS value, count(*) FILTER (chosen_len > rejected_len) AS longer_chosen,
                   count(*) FILTER (chosen_len <> rejected_len) AS pairs
            FROM pairs GROUP BY ALL HAVING pairs > 0 ORDER BY value"""
    )


def length_bias(inputs: Inputs) -> tuple[Figure, Figure]:
    """Longer-chosen share per source and model, and over time per source (each source's drift tested)."""
    rows = []
    for by in ("source", "model_id"):
        t = _shares(inputs, by)
        n = np.array(t.column("pairs").to_pylist(), dtype=float)
        k = np.array(t.column("longer_chosen").to_pylist(), dtype=float)
        low, high = wilson_interval(k, n)
        for i, value in enumerate(t.column("value").to_pylist()):
            rows.append({"by": "source" if by == "source" else "model", "value": value, "pairs": int(n[i]),
                         "share": float(k[i] / n[i]), "low": float(low[i]), "high": float(high[i])})  # fmt: skip
    shares = Figure("length_bias", "Share of pairs whose chosen answer is the longer one", pa.Table.from_pylist(rows))
    for r in rows:
        strict_low, _ = wilson_interval(r["share"] * r["pairs"], r["pairs"], level=FLAG_LEVEL)
        if r["by"] == "source" and strict_low > 0.5:
            shares.flags.append(f"{r['value']} chooses the longer answer in {r['share']:.0%} of {r['pairs']} pairs")
    shares.summary = {f"{r['by']}:{r['value']}": round(r["share"], 4) for r in rows}
    at, unit = bucket(inputs)
    over_time = inputs.table(
        f"""SELECT {at.format(column="feedback_time")} AS time, source,
                   count(*) FILTER (chosen_len > rejected_len) AS longer_chosen,
                   count(*) FILTER (chosen_len <> rejected_len) AS pairs
            FROM pairs GROUP BY ALL HAVING pairs > 0 ORDER BY time, source"""
    )
    drift = Figure(
        "length_bias_over_time", f"Longer-chosen share per {unit}, by source (drift tested)", over_time
    )
    for source in sorted(set(over_time.column("source").to_pylist())):
        part = over_time.filter(pa.compute.equal(over_time.column("source"), source))
        times = np.array([t.timestamp() for t in part.column("time").to_pylist()]) / 86400.0
        result = trend(times, np.array(part.column("longer_chosen").to_pylist(), dtype=float),
                       np.array(part.column("pairs").to_pylist(), dtype=float))  # fmt: skip
        if result["p_value"] == result["p_value"]:  # not NaN: two time points or more
            per_bucket = result["slope_per_day"] * _seconds(unit) / 86400
            drift.summary[source] = f"{per_bucket:+.3g} log-odds per {unit}, p = {result['p_value']:.2g}"
        if result["flagged"]:
            way = "rising" if result["slope_per_day"] > 0 else "falling"
            drift.flags.append(f"{source}: the longer-chosen share is {way} (p = {result['p_value']:.2g})")
    return shares, drift


def position_bias(inputs: Inputs) -> Figure:
    """Win rate by candidate index, per source, over pairwise judgements of two answers of one model.

    In arena requests the index goes with the model, so a better model at index 0 would look like a
    preference for the first position: those pairs are left out. So are rankings and score lists: their
    pairs are not independent (one judgement, many pairs) and no one is shown just two answers.
    """
    table = inputs.table(
        """WITH same AS (SELECT * FROM pairs WHERE chosen_id = rejected_id AND kind = 'PAIRWISE'),
           sides AS (
               SELECT source, chosen_index AS idx, 1 AS won FROM same
               UNION ALL SELECT source, rejected_index, 0 FROM same
           )
           SELECT source, idx AS candidate_index, count(*) AS appearances, sum(won)::BIGINT AS wins,
                  sum(won) / count(*) AS win_rate
           FROM sides GROUP BY ALL ORDER BY source, candidate_index"""
    )
    figure = Figure("position_bias", "Win rate by candidate position, by source (pairwise, one model)", table)
    earlier = inputs.rows(
        """SELECT source, avg(CASE WHEN chosen_index < rejected_index THEN 1.0 ELSE 0.0 END), count(*)
           FROM pairs WHERE chosen_id = rejected_id AND kind = 'PAIRWISE' GROUP BY source ORDER BY source"""
    )
    for source, share, n in earlier:
        figure.summary[source] = f"earlier candidate chosen in {share:.1%} of {n:,} pairs"
        low, high = wilson_interval(share * n, n, level=FLAG_LEVEL)
        if n >= 30 and (low > 0.5 or high < 0.5):
            way = "earlier" if low > 0.5 else "later"
            figure.flags.append(f"{source} prefers the {way} candidate: {share:.0%} of {n} pairs")
    return figure
