"""The rules on which candidates a feedback event judges, shared by the SDK and the join.

A feedback names candidates of its inference by index (``pairwise.chosen``,
``ranking[n].index``, ``scores[n].index``, ``rating.index``,
``implicit.index``). :func:`reference_problems` checks those indices (>= 0,
distinct, chosen != rejected, within the inference's candidates when their
number is known) and that scores and rating values are finite. The producer
SDK calls it without the inference; the join calls it again once the
inference has arrived. :func:`references_fine` is its quick yes for the
usual decoded record (the join asks it first, and the full check only when
it cannot say yes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .fields import finite_number, is_int, is_list
from .shape import show

__all__ = ["FEEDBACK_KINDS", "MAX_CANDIDATES", "PAYLOAD_FIELD", "reference_problems", "references_fine"]

FEEDBACK_KINDS = ("PAIRWISE", "RANKING", "SCORES", "RATING", "IMPLICIT")
#: the feedback field that holds each kind's payload
PAYLOAD_FIELD = {k: k.lower() for k in FEEDBACK_KINDS}
#: candidates per inference, and entries per ranking or scores judgement: 256 bounds one judgement at 32,640 pairs
MAX_CANDIDATES = 256

#: ``check(index, where)`` reports a bad candidate index and says whether it was good
IndexCheck = Callable[[Any, str], bool]


def reference_problems(feedback: Mapping[str, Any], candidate_count: int | None) -> list[str]:
    """What is wrong with the candidate indices (and scores) ``feedback`` gives.

    With ``candidate_count`` None only checks that need no inference run
    (negative indices, chosen == rejected, duplicates, non-finite scores).

    Args:
        feedback: A feedback record (its ``kind`` and that kind's payload field are read).
        candidate_count: How many candidates the inference has, when known.

    Returns:
        Every problem as ``field.path: reason``; empty when the references are fine.
    """
    problems: list[str] = []
    kind = feedback.get("kind")
    field = PAYLOAD_FIELD.get(kind) if isinstance(kind, str) else None
    payload = feedback.get(field) if field else None
    if field is None or payload is None:
        return problems

    def check(index: Any, where: str) -> bool:
        if not is_int(index) or index < 0:
            problems.append(f"{where}: {show(index)} is not a candidate index (an integer >= 0)")
            return False
        if candidate_count is not None and index >= candidate_count:
            n = candidate_count
            problems.append(f"{where}: candidate {index} does not exist; the inference has {n} (0..{n - 1})")
            return False
        return True

    if kind in ("RANKING", "SCORES"):
        _entries(payload, field, candidate_count, check, problems)
    elif not isinstance(payload, Mapping):
        problems.append(f"{field}: expected an object, got {type(payload).__name__} {show(payload)}")
    elif kind == "PAIRWISE":
        chosen, rejected = payload.get("chosen"), payload.get("rejected")
        if check(chosen, "pairwise.chosen") & check(rejected, "pairwise.rejected") and chosen == rejected:
            problems.append(f"pairwise: chosen and rejected are both candidate {chosen}")
    else:
        check(payload.get("index"), f"{field}.index")
        value = payload.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            finite_number(value, f"{field}.value", problems)
    return problems


def _entries(payload: Any, field: str, candidate_count: int | None, check: IndexCheck, problems: list[str]) -> None:
    """The checks of a RANKING or SCORES payload: a list of {index, rank} or {index, score}."""
    if not is_list(payload):
        problems.append(f"{field}: expected a list of objects with index, got {type(payload).__name__} {show(payload)}")
        return
    if len(payload) < 2:
        problems.append(f"{field}: {len(payload)} given, at least 2 candidates are needed")
        return
    if len(payload) > min(MAX_CANDIDATES, candidate_count or MAX_CANDIDATES):
        limit = f"the inference has {candidate_count}" if candidate_count else f"at most {MAX_CANDIDATES} are accepted"
        problems.append(f"{field}: {len(payload)} entries, but {limit}")
        return
    seen: set[Any] = set()
    finite: list[float] = []
    for n, entry in enumerate(payload):
        if not isinstance(entry, Mapping):
            problems.append(f"{field}[{n}]: expected an object with index, got {type(entry).__name__} {show(entry)}")
            continue
        index = entry.get("index")
        if check(index, f"{field}[{n}].index"):
            if index in seen:
                problems.append(f"{field}: candidate {index} appears twice")
            seen.add(index)
        if field == "scores":
            score = entry.get("score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                before = len(problems)
                number = finite_number(score, f"scores[{n}].score", problems)
                if len(problems) == before:
                    finite.append(number)
        else:
            rank = entry.get("rank")
            if is_int(rank) and rank < 1:
                problems.append(f"ranking[{n}].rank: {rank} must be >= 1 (1 is best)")
    if len(finite) > 1 and not math.isfinite(max(finite) - min(finite)):
        problems.append(f"scores: the spread {max(finite)} - ({min(finite)}) overflows a double; scale the scores down")


def _index_fine(index: Any, candidate_count: int | None) -> bool:
    return type(index) is int and index >= 0 and (candidate_count is None or index < candidate_count)


def references_fine(feedback: Mapping[str, Any], candidate_count: int | None) -> bool:
    """True only when :func:`reference_problems` would find nothing (False: it must be asked).

    A quick check of a record with the types decoding gives (dicts, lists, ints, floats); anything
    else gets False, and the full check says what, if anything, is wrong.
    """
    kind = feedback.get("kind")
    if kind == "PAIRWISE":
        payload = feedback.get("pairwise")
        if type(payload) is not dict:
            return False
        chosen, rejected = payload.get("chosen"), payload.get("rejected")
        return _index_fine(chosen, candidate_count) and _index_fine(rejected, candidate_count) and chosen != rejected
    if kind == "RATING" or kind == "IMPLICIT":
        payload = feedback.get("rating" if kind == "RATING" else "implicit")
        if type(payload) is not dict:
            return False
        value = payload.get("value")
        finite = value is None or (type(value) is float and math.isfinite(value))
        return finite and _index_fine(payload.get("index"), candidate_count)
    if kind != "RANKING" and kind != "SCORES":
        return False
    entries = feedback.get("ranking" if kind == "RANKING" else "scores")
    if type(entries) is not list or not 2 <= len(entries) <= min(MAX_CANDIDATES, candidate_count or MAX_CANDIDATES):
        return False
    seen: set[Any] = set()
    field = "rank" if kind == "RANKING" else "score"
    for entry in entries:
        if type(entry) is not dict:
            return False
        index, value = entry.get("index"), entry.get(field)
        if not _index_fine(index, candidate_count) or index in seen:
            return False
        seen.add(index)
        if kind == "RANKING" and not (type(value) is int and value >= 1):
            return False
        if kind == "SCORES" and not (type(value) is float and math.isfinite(value)):
            return False
    if kind == "SCORES":
        scores = [entry["score"] for entry in entries]
        return math.isfinite(max(scores) - min(scores))
    return True
