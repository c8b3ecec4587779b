"""Agreement: the reward model against people on the same comparisons, and people among themselves.

A comparison is one request's two candidates (the lower index first); a judgement of it is
which of the two won. The reward model (source REWARD_MODEL) is set against every human
judgement (HUMAN_ANNOTATOR, END_USER) of the same comparison: accuracy and Cohen's kappa,
per reward-model version. Human annotators who judged the same comparison give
Krippendorff's alpha (nominal), over the comparisons with two or more of them. Every figure is
counted by DuckDB: a row per reward model and human source, a row per panel of annotators' verdicts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .data import Inputs
from .figure import Figure
from .stats import cohen_kappa, krippendorff_alpha_counts

__all__ = ["human_agreement", "reward_model_agreement"]

_JUDGED = """
    SELECT request_id, least(chosen_index, rejected_index) AS a, greatest(chosen_index, rejected_index) AS b,
           (chosen_index < rejected_index) AS first_won, source, source_id, source_version, feedback_id,
           feedback_time, pair_id
    FROM pairs
"""
#: the smallest sample whose agreement figures get a flag or are relied on
MIN_COMPARISONS = 30


def reward_model_agreement(inputs: Inputs) -> Figure:
    """Accuracy and kappa of each reward model (id and version) against human judgements of the same comparisons.

    Each reward model gives one verdict per comparison (its latest, if it scored the same request again); each
    human judgement is set against each reward model once. The headline is the reward model with the most
    comparisons; reward models are never added up.
    """
    table = inputs.table(
        f"""WITH j AS ({_JUDGED}),
            rm AS (
                SELECT * FROM j WHERE source = 'REWARD_MODEL'
                QUALIFY row_number() OVER (PARTITION BY request_id, a, b, source_id, source_version
                                           ORDER BY feedback_time DESC, pair_id) = 1
            ),
            human AS (SELECT DISTINCT ON (feedback_id, request_id, a, b) * FROM j
                      WHERE source IN ('HUMAN_ANNOTATOR', 'END_USER'))
            SELECT r.source_id || ' ' || r.source_version AS reward_model, h.source AS human_source,
                   count(*) FILTER (h.first_won AND r.first_won) AS both_first,
                   count(*) FILTER (h.first_won AND NOT r.first_won) AS human_first_rm_second,
                   count(*) FILTER (NOT h.first_won AND r.first_won) AS human_second_rm_first,
                   count(*) FILTER (NOT h.first_won AND NOT r.first_won) AS both_second
            FROM human h JOIN rm r USING (request_id, a, b)
            GROUP BY ALL ORDER BY reward_model, human_source"""
    )
    merged: dict[tuple[str, str], np.ndarray] = {}
    for r in table.to_pylist():
        cell = np.array([[r["both_first"], r["human_first_rm_second"]], [r["human_second_rm_first"], r["both_second"]]])
        for human in ("ALL", r["human_source"]):
            merged[(r["reward_model"], human)] = merged.get((r["reward_model"], human), np.zeros((2, 2))) + cell
    humans = {h for _, h in merged} - {"ALL"}
    rows = [_scores(model, human, t) for (model, human), t in sorted(merged.items())
            if human != "ALL" or len(humans) > 1]  # fmt: skip
    figure = Figure("rm_agreement", "Reward model against people on the same comparisons", pa.Table.from_pylist(rows))
    if not rows:
        figure.notes.append("no comparison was judged by both a reward model and a person")
        return figure
    best = max((r for r in (_scores(m, h, t) for (m, h), t in merged.items()) if r["human_source"] == "ALL"),
               key=lambda r: (r["comparisons"], r["reward_model"]))  # fmt: skip
    figure.summary = {k: best[k] for k in ("reward_model", "comparisons", "accuracy", "kappa")}
    if best["comparisons"] < MIN_COMPARISONS:
        figure.notes.append(f"only {best['comparisons']} comparisons judged by both: too few to rely on")
    figure.notes.append("a comparison the reward model scored as a tie (within its margin) made no pair: not counted")
    return figure


def _scores(model: str, human: str, t: np.ndarray) -> dict[str, Any]:
    n = int(t.sum())
    accuracy = float(np.trace(t) / n) if n else float("nan")
    kappa = cohen_kappa(t) if n else float("nan")
    return {"reward_model": model, "human_source": human, "comparisons": n, "accuracy": accuracy, "kappa": kappa}


def human_agreement(inputs: Inputs) -> Figure:
    """Krippendorff's alpha between human annotators over the comparisons two or more of them judged.

    The comparisons are counted by panel (how many annotators, how many of them for each candidate): the
    figure's rows, and all alpha needs.
    """
    panels = inputs.table(
        f"""WITH j AS (  -- an annotator without an id is a rater of their own, each judgement
                SELECT *, CASE WHEN source_id = '-' THEN feedback_id ELSE source_id END AS rater
                FROM ({_JUDGED}) WHERE source = 'HUMAN_ANNOTATOR'
            ),
            latest AS (  -- an annotator's latest verdict on a comparison
                SELECT * FROM j QUALIFY row_number() OVER (PARTITION BY request_id, a, b, rater
                                                           ORDER BY feedback_time DESC, pair_id) = 1
            ),
            units AS (
                SELECT count(*) FILTER (first_won) AS for_first, count(*) FILTER (NOT first_won) AS for_second
                FROM latest GROUP BY request_id, a, b HAVING count(*) >= 2
            )
            SELECT for_first + for_second AS annotators, for_first, for_second,
                   (for_first = 0 OR for_second = 0) AS unanimous, count(*) AS comparisons
            FROM units GROUP BY ALL ORDER BY annotators, for_first DESC"""
    )
    figure = Figure("human_agreement", "Agreement between human annotators on the same comparisons", panels)
    counts = panels.column("comparisons").to_numpy().astype(float)
    total = int(counts.sum())
    if not total:
        figure.notes.append("no comparison was judged by two or more annotators: no inter-annotator agreement")
        return figure
    verdicts = np.column_stack([panels.column(c).to_numpy().astype(float) for c in ("for_first", "for_second")])
    alpha = krippendorff_alpha_counts(verdicts, units=counts)
    unanimous = int(counts[panels.column("unanimous").to_numpy(zero_copy_only=False)].sum())
    figure.summary = {"comparisons": total, "krippendorff_alpha": alpha, "unanimous": unanimous / total}
    if total < MIN_COMPARISONS:
        figure.notes.append(f"only {total} comparisons judged by two or more annotators: too few to rely on")
    if alpha < 0.667 and total >= MIN_COMPARISONS:
        figure.flags.append(f"annotators agree little (Krippendorff's alpha {alpha:.2f}, below 0.667)")
    return figure
