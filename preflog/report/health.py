"""Coverage and health: feedback per inference, join latency, and what did not pair, over time.

* **coverage**: judgements (distinct feedback ids in pairs and signals) per inference, by kind
  and source. Inferences are the distinct request ids the log knows of: those with a pair or a
  signal, and those that expired without feedback (unmatched NO_FEEDBACK).
* **join latency**: event time from inference to the feedback that paired with it, per judgement.
* **health**: per time bucket, judgements joined, and unmatched (by reason) and dead-lettered
  records, each as a rate of all the records of that bucket.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .bias import bucket
from .data import Inputs, narrowed
from .figure import Figure

__all__ = ["coverage", "health", "join_latency"]


def coverage(inputs: Inputs) -> Figure:
    """Judgements per inference by kind and source."""
    inferences = inputs.rows(
        """SELECT count(DISTINCT request_id) FROM (
               SELECT request_id FROM pairs UNION ALL SELECT request_id FROM signals
               UNION ALL SELECT request_id FROM unmatched WHERE reason = 'NO_FEEDBACK')"""
    )[0][0]
    table = inputs.table(
        """SELECT kind, source, count(*) AS judgements, count(*) / greatest(?, 1) AS per_inference
            FROM judgements GROUP BY ALL ORDER BY kind, source""",
        inferences,
    )
    figure = Figure("coverage", "Judgements per inference, by feedback kind and source", table)
    without = inputs.rows("SELECT count(*) FROM unmatched WHERE reason = 'NO_FEEDBACK'")[0][0]
    if narrowed(inputs.selection):
        figure.notes.append(NOT_FILTERED)
    figure.summary = {"inferences": int(inferences), "judgements": int(sum(table.column("judgements").to_pylist())),
                      "inferences_without_feedback": int(without)}  # fmt: skip
    return figure


def join_latency(inputs: Inputs) -> Figure:
    """The distribution of the join latency: judgements per log-spaced bucket of seconds, and its quantiles.

    Buckets are powers of 10 ** 0.1 seconds (a judgement time-stamped before its inference, or within a
    millisecond of it, falls in the first, 0.001 s).
    """
    table = inputs.table(
        """SELECT power(10, floor(10 * log10(greatest(join_latency_ms / 1000.0, 0.001))) / 10) AS seconds,
                   count(*) AS judgements
            FROM judgements WHERE join_latency_ms IS NOT NULL GROUP BY ALL ORDER BY seconds"""
    )
    figure = Figure("join_latency", "Join latency: event time from inference to its feedback (seconds)", table)
    if table.num_rows:
        n, (p50, p90, p99) = _quantiles(inputs, "SELECT join_latency_ms AS v FROM judgements", (0.5, 0.9, 0.99))
        figure.summary = {"p50_s": p50 / 1000, "p90_s": p90 / 1000, "p99_s": p99 / 1000, "n": int(n)}
    return figure


def _quantiles(inputs: Inputs, values: str, qs: tuple[float, ...]) -> tuple[int, list[float]]:
    """How many non-null integers ``v`` the query ``values`` gives, and DuckDB's ``quantile_cont`` of each of ``qs``.

    Exact, in memory independent of their number (quantile_cont holds every value): the two order statistics
    around (n - 1) * q come from the values' counts in order (spilling), interpolated as DuckDB does, to the bit.
    """
    n = inputs.rows(f"SELECT count(v) FROM ({values})")[0][0]
    ranks = [(math.floor((n - 1) * q), math.ceil((n - 1) * q)) for q in qs]
    picks = ", ".join(f"min(v) FILTER (below > {lo}), min(v) FILTER (below > {hi})" for lo, hi in ranks)
    found = inputs.rows(
        f"""WITH counted AS (SELECT v, count(*) AS n FROM ({values}) WHERE v IS NOT NULL GROUP BY v)
            SELECT {picks} FROM (SELECT v, sum(n) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS below FROM counted)"""
    )[0]
    out = []
    for i, q in enumerate(qs):
        lo, hi, d = float(found[2 * i]), float(found[2 * i + 1]), (n - 1) * q - ranks[i][0]
        # lo * (1 - d) + hi * d with one rounding of the last step (a fused multiply-add), as DuckDB's build
        out.append(lo if d == 0 else float(Fraction(lo) * Fraction(1.0 - d) + Fraction(hi * d)))
    return int(n), out


def health(inputs: Inputs) -> Figure:
    """Per time bucket: judgements, unmatched by reason and dead letters, as rates of all records."""
    times = (
        "SELECT feedback_time AS t FROM pairs UNION ALL SELECT feedback_time FROM signals "
        "UNION ALL SELECT event_time FROM unmatched UNION ALL SELECT failed_at FROM dead_letters"
    )
    at, unit = bucket(inputs, times=times)
    table = inputs.table(
        f"""WITH events AS (
                SELECT {at.format(column="feedback_time")} AS time, 'joined' AS what FROM judgements
                UNION ALL SELECT {at.format(column="event_time")}, lower(reason) FROM unmatched
                UNION ALL SELECT {at.format(column="failed_at")}, 'dead_letter' FROM dead_letters
            )
            SELECT time, what, count(*) AS records, count(*) / sum(count(*)) OVER (PARTITION BY time) AS rate
            FROM events WHERE time IS NOT NULL GROUP BY time, what ORDER BY time, what"""
    )
    figure = Figure("health", f"Joined, unmatched and dead-lettered records per {unit} (share of all)", table)
    totals = inputs.table(
        """SELECT what, count(*) AS n FROM (
               SELECT 'joined' AS what FROM (SELECT DISTINCT feedback_id FROM pairs UNION SELECT DISTINCT
               feedback_id FROM signals) UNION ALL SELECT lower(reason) FROM unmatched
               UNION ALL SELECT 'dead_letter' FROM dead_letters) GROUP BY what ORDER BY what"""
    )
    counts = dict(zip(totals.column("what").to_pylist(), totals.column("n").to_pylist(), strict=True))
    total = sum(counts.values()) or 1
    figure.summary = {what: f"{n:,} ({n / total:.1%})" for what, n in counts.items()}
    if narrowed(inputs.selection):
        figure.notes.append(NOT_FILTERED)
        return figure  # its rates set the selected judgements against every unmatched record: no flags
    for what in ("dead_letter", "late", "no_inference"):
        if counts.get(what, 0) / total > 0.05:
            figure.flags.append(f"{what.replace('_', ' ')}: {counts[what] / total:.1%} of all records")
    return figure


#: what a reader of the health figures must know when the report is filtered by more than dates
NOT_FILTERED = ("unmatched and dead-lettered records are filtered by date only (not by model, source, kind or "
                "tenant): their rates compare them with the selected judgements only")  # fmt: skip
