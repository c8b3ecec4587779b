"""Cohorts: how much one person's preferences differ from everyone else's, with intervals.

Each subject (the person a pair is about: :mod:`preflog.privacy.subjects`) with at least ``minimum``
judgements is a cohort of its own; the subjects with fewer are pooled into one cohort, ``others``. Each
cohort is compared with the rest of the population: every pair of the report that is not the cohort's
(leave-one-out, so a heavy subject does not pull the population towards itself). Two measures:

* **length preference**: the share of the cohort's pairs (of unequal lengths) whose chosen answer is the
  longer one, with its Wilson interval, against the rest's share; the difference has Newcombe's interval
  (the hybrid score interval of a difference of two independent proportions). Every pair has lengths, so
  every subject has this measure.
* **model preference**: over pairs whose answers come from two models (arena requests), how often the
  cohort's verdict agrees with the rest's majority for the same two models (a model pair the rest split
  evenly, or never judged, is left out), with its Wilson interval, against the agreement expected if the
  cohort judged like the rest: the mean of the rest's majority share over the cohort's pairs.

A cohort is flagged when its difference is beyond its interval at 99% with a Bonferroni correction over
the cohorts (so a report of a thousand subjects does not flag ten by chance). The pairs of one ranking are
not independent: for rankings the intervals are somewhat too narrow. Subjects are named ``s-`` and the
first 12 hex digits of the sha256 of their pseudonym (or ``sub_`` label), never by an id; the rows of erased
or unconsented subjects are not in the report at all (:mod:`.privacy`).
"""

from __future__ import annotations

import math
from collections import defaultdict

import pyarrow as pa

from preflog.privacy.subjects import label_sql

from .data import Inputs
from .figure import Figure
from .stats import wilson_interval

__all__ = ["MINIMUM", "cohort_figures", "cohort_of", "model_agreement", "newcombe_interval", "subject_lengths"]

#: the judgements a subject needs to be a cohort of its own (the report's --min-per-subject)
MINIMUM = 20
#: the flag's confidence before the Bonferroni correction
FLAG_LEVEL = 0.99
OTHERS = "others"
#: a subject's name in the report: s- and 12 hex digits of the sha256 of its label (NULL without a subject)
WHO = f"'s-' || substr(sha256({label_sql('subject')}), 1, 12)"


def newcombe_interval(k1: float, n1: float, k2: float, n2: float, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``k1/n1 - k2/n2`` (two independent proportions); nan when n is 0."""
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def cohort_of(counts: dict[str | None, int], minimum: int) -> dict[str | None, str | None]:
    """Each subject's cohort: itself with at least ``minimum`` judgements, else ``others``; no subject, none."""
    return {who: None if who is None else who if n >= minimum else OTHERS for who, n in counts.items()}


def _level(cohorts: int) -> float:
    return 1 - (1 - FLAG_LEVEL) / max(cohorts, 1)


def _sizes(members: dict[str | None, str | None]) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for cohort in members.values():
        if cohort is not None:
            sizes[cohort] += 1
    return sizes


def subject_lengths(inputs: Inputs, minimum: int = MINIMUM) -> Figure:
    """Per cohort: the longer-chosen share against the rest's, its difference and Newcombe interval."""
    found = inputs.rows(
        f"""SELECT {WHO} AS who, count(*) FILTER (chosen_len > rejected_len),
                   count(*) FILTER (chosen_len <> rejected_len)
            FROM pairs GROUP BY ALL"""
    )
    k_all = sum(int(k) for _, k, _ in found)
    n_all = sum(int(n) for _, _, n in found)
    members = cohort_of({who: int(n) for who, _, n in found}, minimum)
    k: dict[str, int] = defaultdict(int)
    n: dict[str, int] = defaultdict(int)
    for who, longer, pairs in found:
        cohort = members[who]
        if cohort is not None:
            k[cohort] += int(longer)
            n[cohort] += int(pairs)
    sizes = _sizes(members)
    strict = _level(len(n))
    rows, flags = [], []
    for cohort in sorted(n, key=lambda c: (c == OTHERS, c)):
        if n[cohort] == 0:
            continue
        rest_k, rest_n = k_all - k[cohort], n_all - n[cohort]
        low, high = wilson_interval(k[cohort], n[cohort])
        d_low, d_high = newcombe_interval(k[cohort], n[cohort], rest_k, rest_n)
        share, rest = k[cohort] / n[cohort], rest_k / rest_n if rest_n else math.nan
        rows.append({"cohort": cohort, "subjects": sizes[cohort], "pairs": n[cohort], "share": share, "low": low,
                     "high": high, "population_share": rest, "population_pairs": rest_n,
                     "difference": share - rest, "diff_low": d_low, "diff_high": d_high})  # fmt: skip
        s_low, s_high = newcombe_interval(k[cohort], n[cohort], rest_k, rest_n, strict)
        if s_low > 0 or s_high < 0:
            flags.append(
                f"{cohort} chooses the longer answer in {share:.0%} of {n[cohort]} pairs, the rest in {rest:.0%}"
            )
    figure = Figure("subject_length_preference", "Longer-chosen share per subject, against everyone else",
                    pa.Table.from_pylist(rows, schema=_LENGTH))  # fmt: skip
    figure.flags = flags
    figure.summary = {"cohorts": len(rows), "subjects": sum(sizes.values()), "min_per_subject": minimum,
                      "flagged": len(flags), "population_share": k_all / n_all if n_all else None}  # fmt: skip
    figure.notes.append(
        "difference: the cohort's share minus the share of every other pair (leave-one-out), with Newcombe's 95% "
        f"interval; subjects with fewer than {minimum} pairs of unequal lengths are pooled as 'others'; flagged: "
        "beyond a 99% interval, Bonferroni-corrected over the cohorts. Subjects are s- and a sha256 of their pseudonym"
    )
    return figure


def model_agreement(inputs: Inputs, minimum: int = MINIMUM) -> Figure:
    """Per cohort: agreement with the rest's majority for the same two models, against the agreement expected."""
    found = inputs.rows(
        f"""SELECT {WHO} AS who, least(chosen_id, rejected_id) AS a, greatest(chosen_id, rejected_id) AS b,
                   count(*) FILTER (chosen_id < rejected_id) AS wins_a, count(*) AS n
            FROM pairs WHERE chosen_id <> rejected_id GROUP BY ALL"""
    )
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per: dict[str | None, int] = defaultdict(int)
    for who, a, b, wins, n in found:
        totals[(a, b)][0] += int(wins)
        totals[(a, b)][1] += int(n)
        per[who] += int(n)
    members = cohort_of(dict(per), minimum)
    cells: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for who, a, b, wins, n in found:
        cohort = members[who]
        if cohort is not None:
            cells[cohort][(a, b)][0] += int(wins)
            cells[cohort][(a, b)][1] += int(n)
    sizes = _sizes(members)
    strict = _level(len(cells))
    rows, flags = [], []
    for cohort in sorted(cells, key=lambda c: (c == OTHERS, c)):
        agree = judged = 0
        expected = 0.0
        for pair, (wins, n) in cells[cohort].items():
            rest_wins, rest_n = totals[pair][0] - wins, totals[pair][1] - n
            if rest_n == 0 or 2 * rest_wins == rest_n:
                continue  # the rest never judged these two models, or split evenly: no majority to agree with
            a_leads = 2 * rest_wins > rest_n
            agree += wins if a_leads else n - wins
            judged += n
            expected += n * max(rest_wins, rest_n - rest_wins) / rest_n
        if judged == 0:
            continue
        low, high = wilson_interval(agree, judged)
        rate, baseline = agree / judged, expected / judged
        rows.append({"cohort": cohort, "subjects": sizes[cohort], "pairs": judged, "agreement": rate, "low": low,
                     "high": high, "expected": baseline, "difference": rate - baseline})  # fmt: skip
        s_low, s_high = wilson_interval(agree, judged, strict)
        if not s_low <= baseline <= s_high:
            flags.append(f"{cohort} agrees with everyone else's preferred model in {rate:.0%} of {judged} pairs, "
                         f"{baseline:.0%} expected")  # fmt: skip
    figure = Figure("subject_model_agreement", "Agreement with everyone else's preferred model, per subject",
                    pa.Table.from_pylist(rows, schema=_AGREEMENT))  # fmt: skip
    figure.flags = flags
    figure.summary = {"cohorts": len(rows), "min_per_subject": minimum, "flagged": len(flags)}
    figure.notes.append(
        "agreement: the cohort's verdicts that match the majority of every other pair for the same two models "
        "(Wilson 95% interval); expected: the rest's majority share over the same model pairs, what a cohort judging "
        "like everyone else would score. Only pairs of two different models count"
    )
    return figure


_LENGTH = pa.schema([("cohort", pa.string()), ("subjects", pa.int64()), ("pairs", pa.int64()),
                     ("share", pa.float64()), ("low", pa.float64()), ("high", pa.float64()),
                     ("population_share", pa.float64()), ("population_pairs", pa.int64()),
                     ("difference", pa.float64()), ("diff_low", pa.float64()),
                     ("diff_high", pa.float64())])  # fmt: skip
_AGREEMENT = pa.schema([("cohort", pa.string()), ("subjects", pa.int64()), ("pairs", pa.int64()),
                        ("agreement", pa.float64()), ("low", pa.float64()), ("high", pa.float64()),
                        ("expected", pa.float64()), ("difference", pa.float64())])  # fmt: skip


def cohort_figures(inputs: Inputs, minimum: int = MINIMUM) -> list[Figure]:
    """The report's Cohorts section."""
    return [subject_lengths(inputs, minimum), model_agreement(inputs, minimum)]
