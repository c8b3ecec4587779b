"""What a correct pipeline makes of generated events, decided from the generator's own choices alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .generator import GeneratedEvent

__all__ = ["GroundTruth", "expected_outcomes"]


@dataclass
class GroundTruth:
    """What a correct pipeline makes of generated events, decided from the generator's own choices.

    Ids are strings; pairs are ``(feedback_id, chosen_index, rejected_index)``, signals
    ``(feedback_id, index)``. ``unmatched`` maps a reason (NO_FEEDBACK: request_ids,
    NO_INFERENCE and NO_PAIRS: feedback_ids) to ids; ``dead_letters`` lists the invalid
    events (each expected once as a dead letter, with its reason). ``image_faults`` lists the
    image references the generator broke on purpose (see :mod:`.images`).
    """

    pairs: set[tuple[str, int, int]] = field(default_factory=set)
    signals: set[tuple[str, int]] = field(default_factory=set)
    unmatched: dict[str, set[str]] = field(default_factory=dict)
    dead_letters: list[GeneratedEvent] = field(default_factory=list)
    duplicates: int = 0  # redelivered feedback, expected to be counted once
    #: image references broken on purpose, of inferences that were sent: (request_id, uri, reason)
    image_faults: set[tuple[str, str, str]] = field(default_factory=set)


def expected_outcomes(events: list[GeneratedEvent], score_margin: float = 0.0) -> GroundTruth:
    """The expected outputs of ``events`` (the generator's traffic, all within the join window).

    Independent of the processor on purpose (no call into ``processors/``), so a test can
    hold the Joiner to it:

    * PAIRWISE: the one pair; RANKING: every (better, worse) by rank, ties none; SCORES
      (mode ``all``): every pair whose score difference exceeds ``score_margin``. A RANKING
      or SCORES judgement deciding no pair at all is unmatched ``NO_PAIRS``.
    * RATING and IMPLICIT: one unpaired signal on the judged candidate.
    * Feedback whose inference never comes: unmatched ``NO_INFERENCE`` (also when its
      candidate index is invalid: without the inference nothing can tell).
    * An inference without any valid judgement: unmatched ``NO_FEEDBACK``.
    * A redelivered feedback (same feedback_id) counts once.
    * Undecodable bytes, and a candidate index the inference does not have: a dead letter.
    * A conversation turn, by reference or in full, an agent's trajectory or a prompt with images is an
      inference like any other: each judged turn gives the pairs and signals of its judgements, each turn
      never judged is unmatched ``NO_FEEDBACK``.
    """
    truth = GroundTruth()
    candidates = {e.key: len(e.record["candidates"]) for e in events if e.event_type == "inference" and e.record}
    judged: set[str] = set()
    seen: set[str] = set()

    def no_pairs(fid: str) -> None:
        truth.unmatched.setdefault("NO_PAIRS", set()).add(fid)

    for e in events:
        truth.image_faults |= {(e.key, uri, reason) for uri, reason in e.image_faults}
        if e.event_type == "garbage":
            truth.dead_letters.append(e)
            continue
        if e.event_type != "feedback" or e.record is None:
            continue
        fb = e.record
        fid = fb["feedback_id"]
        if fid in seen:
            truth.duplicates += 1
            continue
        seen.add(fid)
        if e.key not in candidates:
            truth.unmatched.setdefault("NO_INFERENCE", set()).add(fid)
            continue
        if e.invalid_reason:
            truth.dead_letters.append(e)
            continue
        judged.add(e.key)
        kind = fb["kind"]
        if kind == "PAIRWISE":
            truth.pairs.add((fid, fb["pairwise"]["chosen"], fb["pairwise"]["rejected"]))
        elif kind in ("RANKING", "SCORES"):
            if kind == "RANKING":
                value = {r["index"]: -r["rank"] for r in fb["ranking"]}  # rank 1 is best
                better = [(a, b) for a in value for b in value if value[a] > value[b]]
            else:
                value = {s["index"]: s["score"] for s in fb["scores"]}
                better = [(a, b) for a in value for b in value if value[a] - value[b] > score_margin]
            if not better:
                no_pairs(fid)
            truth.pairs |= {(fid, a, b) for a, b in better}
        else:
            truth.signals.add((fid, fb[kind.lower()]["index"]))
    for request_id in candidates:
        if request_id not in judged:
            truth.unmatched.setdefault("NO_FEEDBACK", set()).add(request_id)
    return truth
