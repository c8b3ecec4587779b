"""Agreement: the reward model against people on the same comparisons, and people among themselves.

A comparison is one request's two candidates (the lower index first); a judgement of it is
which of the two won. The reward model (source REWARD_MODEL) is set against every human
judgement (HUMAN_ANNOTATOR, END_USER) of the same comparison: accuracy and Cohen's kappa,
per reward-model version. Human annotators who judged the same comparison give
Krippendorff's alpha (nominal), over the comparisons with two or more of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .data import Inputs
from .figure import Figure
from .stats import cohen_kappa, krippendorff_alpha

__all__ = ["human_agreement", "reward_model_agreement"]

_JUDGED = """
    SELECT request_id, least(chosen_index, rejected_index) AS a, greatest(chosen_index, rejected_index) AS b,
           (chosen_index < rejected_index) AS first_won, source, source_id, source_version, feedback_id
    FROM pairs
"""


def reward_model_agreement(inputs: Inputs) -> Figure:
    """Accuracy and kappa of the reward model against human judgements of the same comparisons."""
    table = inputs.table(
        f"""WITH j AS ({_JUDGED})
            SELECT r.source_version AS rm_version, h.source AS human_source,
                   count(*) FILTER (h.first_won AND r.first_won) AS both_first,
                   count(*) FILTER (h.first_won AND NOT r.first_won) AS human_first_rm_second,
                   count(*) FILTER (NOT h.first_won AND r.first_won) AS human_second_rm_first,
                   count(*) FILTER (NOT h.first_won AND NOT r.first_won) AS both_second
            FROM j h JOIN j r USING (request_id, a, b)
            WHERE r.source = 'REWARD_MODEL' AND h.source IN ('HUMAN_ANNOTATOR', 'END_USER')
            GROUP BY ALL ORDER BY rm_version, human_source"""
    )
    merged: dict[tuple[str, str], np.ndarray] = {}
    for r in table.to_pylist():
        cell = np.array([[r["both_first"], r["human_first_rm_second"]], [r["human_second_rm_first"], r["both_second"]]])
        for version in ("ALL", r["rm_version"]):
            for human in ("ALL", r["human_source"]):
                merged[(version, human)] = merged.get((version, human), np.zeros((2, 2))) + cell
    versions = {v for v, _ in merged} - {"ALL"}
    humans = {h for _, h in merged} - {"ALL"}
    rows = [_scores(version, human, t) for (version, human), t in sorted(merged.items())]
    figure = Figure("rm_agreement", "Reward model against people on the same comparisons", pa.table({}))
    if not rows:
        figure.notes.append("no comparison was judged by both the reward model and a person")
        return figure
    overall = _scores("ALL", "ALL", merged[("ALL", "ALL")])
    figure.summary = {k: overall[k] for k in ("comparisons", "accuracy", "kappa")}
    if overall["comparisons"] < 30:
        figure.notes.append(f"only {overall['comparisons']} comparisons judged by both: too few to rely on")
    # a row per version and source; an ALL row only where it adds up more than one version or source
    keep = [r for r in rows if (r["rm_version"] != "ALL" or len(versions) > 1)
            and (r["human_source"] != "ALL" or len(humans) > 1)]  # fmt: skip
    figure.table = pa.Table.from_pylist(keep or [overall])
    return figure


def _scores(version: str, human: str, t: np.ndarray) -> dict[str, Any]:
    n = int(t.sum())
    accuracy = float(np.trace(t) / n) if n else float("nan")
    kappa = cohen_kappa(t) if n else float("nan")
    return {"rm_version": version, "human_source": human, "comparisons": n, "accuracy": accuracy, "kappa": kappa}


def human_agreement(inputs: Inputs) -> Figure:
    """Krippendorff's alpha between human annotators over the comparisons two or more of them judged."""
    units = inputs.table(
        f"""WITH j AS ({_JUDGED} WHERE source = 'HUMAN_ANNOTATOR')
            SELECT request_id, a, b, list(first_won ORDER BY source_id) AS verdicts,
                   count(DISTINCT source_id) AS annotators
            FROM (SELECT DISTINCT ON (request_id, a, b, source_id) * FROM j ORDER BY request_id, a, b, source_id,
                  feedback_id)
            GROUP BY request_id, a, b HAVING count(DISTINCT source_id) >= 2"""
    )
    verdicts = units.column("verdicts").to_pylist()
    figure = Figure("human_agreement", "Agreement between human annotators on the same comparisons", units)
    if not verdicts:
        figure.notes.append("no comparison was judged by two or more annotators: no inter-annotator agreement")
        return figure
    alpha = krippendorff_alpha([list(v) for v in verdicts])
    unanimous = sum(1 for v in verdicts if len(set(v)) == 1)
    figure.summary = {"comparisons": len(verdicts), "krippendorff_alpha": alpha, "unanimous": unanimous / len(verdicts)}
    figure.table = pa.table({"annotators": units.column("annotators"),
                             "unanimous": [len(set(v)) == 1 for v in verdicts]})  # fmt: skip
    if alpha < 0.667:
        figure.flags.append(f"annotators agree little (Krippendorff's alpha {alpha:.2f}, below 0.667)")
    return figure
