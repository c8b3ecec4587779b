"""Synthetic traffic is deterministic, valid where it claims to be, and as messy as asked."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

import pytest

from preflog.producers.generator import GeneratedEvent, TrafficProfile, expected_outcomes, generate
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_same_seed_same_events() -> None:
    assert generate(TrafficProfile(requests=50), START) == generate(TrafficProfile(requests=50), START)
    assert generate(TrafficProfile(requests=50, seed=1), START) != generate(TrafficProfile(requests=50, seed=2), START)


def test_valid_events_validate_and_invalid_ones_do_not() -> None:
    events = generate(TrafficProfile(requests=400, invalid=0.2), START)
    counts = {e.key: len(e.record["candidates"]) for e in events if e.event_type == "inference" and e.record}
    invalid = 0
    for e in events:
        if e.record is None:
            assert e.event_type == "garbage" and e.raw is not None
        elif e.event_type == "inference":
            inference_record(e.record)
        elif e.event_type == "feedback" and not e.invalid_reason:
            feedback_record(e.record, counts.get(e.key))
        elif e.event_type == "feedback":
            invalid += 1
            with pytest.raises(ValidationError, match="does not exist"):
                feedback_record(e.record, counts[e.key])
    assert invalid > 0


def test_shares_are_roughly_as_configured() -> None:
    p = TrafficProfile(
        requests=2000,
        no_feedback=0.25,
        out_of_order=0.0,
        duplicates=0.0,
        invalid=0.0,
        orphan_feedback=0.0,
        extra_feedback=0.0,
    )
    events = generate(p, START)
    kinds = Counter(e.event_type for e in events)
    assert kinds["inference"] == 2000
    assert 0.70 < kinds["feedback"] / 2000 < 0.80
    assert Counter(e.record["kind"] for e in events if e.record and e.event_type == "feedback").keys() == set(p.kinds)


def test_out_of_order_feedback_is_sent_before_its_inference() -> None:
    events = generate(TrafficProfile(requests=300, out_of_order=0.5), START)
    first_seen: dict[str, str] = {}
    for e in events:
        first_seen.setdefault(e.key, e.event_type)
    assert "feedback" in first_seen.values()
    for e in events:  # event time of feedback is still after its inference
        if e.event_type == "feedback" and e.record:
            assert e.record["event_time"] >= START


def test_duplicates_reuse_the_feedback_id() -> None:
    events = generate(TrafficProfile(requests=500, duplicates=0.3), START)
    ids = Counter(e.record["feedback_id"] for e in events if e.event_type == "feedback" and e.record)
    assert max(ids.values()) == 2


def _fb(rid: str, fid: str, kind: str, **payload: Any) -> GeneratedEvent:
    record = {"feedback_id": fid, "request_id": rid, "event_time": START, "kind": kind, **payload}
    return GeneratedEvent(0.0, "feedback", rid, record)


def _inf(rid: str, n: int = 3) -> GeneratedEvent:
    record = {"request_id": rid, "candidates": [{"index": i, "text": str(i)} for i in range(n)]}
    return GeneratedEvent(0.0, "inference", rid, record)


def test_ground_truth_of_each_kind_of_judgement() -> None:
    events = [
        _inf("r1"),
        _fb("r1", "pw", "PAIRWISE", pairwise={"chosen": 2, "rejected": 0}),
        _fb("r1", "rk", "RANKING", ranking=[{"index": 0, "rank": 2}, {"index": 1, "rank": 1}, {"index": 2, "rank": 2}]),
        _fb("r1", "tie", "RANKING", ranking=[{"index": 0, "rank": 1}, {"index": 1, "rank": 1}]),
        _fb(
            "r1",
            "sc",
            "SCORES",
            scores=[{"index": 0, "score": 0.5}, {"index": 1, "score": 0.5}, {"index": 2, "score": 1.0}],
        ),
        _fb("r1", "rt", "RATING", rating={"index": 1, "label": True}),
        _fb("r1", "im", "IMPLICIT", implicit={"index": 0, "signal": "copy", "label": True}),
        _fb("r1", "pw", "PAIRWISE", pairwise={"chosen": 2, "rejected": 0}),  # redelivered
        _inf("lonely"),
        _fb("orphan", "o1", "PAIRWISE", pairwise={"chosen": 1, "rejected": 0}),
        _inf("r2"),
        GeneratedEvent(0.0, "garbage", "r2", raw=b"\x00", invalid_reason="undecodable bytes"),
    ]
    bad = _fb("r2", "bad", "PAIRWISE", pairwise={"chosen": 5, "rejected": 0})
    events.append(GeneratedEvent(0.0, "feedback", "r2", bad.record, invalid_reason="candidate 5 does not exist"))
    truth = expected_outcomes(events)
    assert truth.pairs == {
        ("pw", 2, 0),
        ("rk", 1, 0),
        ("rk", 1, 2),
        ("sc", 2, 0),
        ("sc", 2, 1),
    }
    assert truth.signals == {("rt", 1), ("im", 0)}
    assert truth.unmatched == {"NO_PAIRS": {"tie"}, "NO_INFERENCE": {"o1"}, "NO_FEEDBACK": {"lonely", "r2"}}
    assert [e.event_type for e in truth.dead_letters] == ["garbage", "feedback"]
    assert truth.duplicates == 1
    assert expected_outcomes(events, score_margin=0.6).pairs == truth.pairs - {("sc", 2, 0), ("sc", 2, 1)}


def expanded_pairs(events: Any, inferences: Any) -> set[tuple[str, int, int]]:
    """The (feedback_id, chosen, rejected) of each valid feedback on one of ``inferences``, as the join expands it.

    The first copy of each feedback only. A cross-check: the ground truth itself never calls processors/.
    """
    from preflog.processors.pairs import expand

    seen: set[str] = set()
    pairs: set[tuple[str, int, int]] = set()
    for e in events:
        valid = e.event_type == "feedback" and e.record and not e.invalid_reason and e.key in inferences
        if valid and e.record and e.record["feedback_id"] not in seen:
            seen.add(e.record["feedback_id"])
            pairs |= {(e.record["feedback_id"], p.chosen, p.rejected) for p in expand(e.record)}
    return pairs


def test_ground_truth_agrees_with_pair_expansion_on_generated_traffic() -> None:
    """A cross-check only: the ground truth itself never calls processors/."""
    events = generate(TrafficProfile(requests=600, invalid=0.05, duplicates=0.1, orphan_feedback=0.05), START)
    truth = expected_outcomes(events)
    inferences = {e.key for e in events if e.event_type == "inference"}
    pairs = expanded_pairs(events, inferences)
    assert truth.pairs == pairs and len(pairs) > 500
    assert truth.duplicates > 0 and truth.dead_letters and truth.unmatched["NO_INFERENCE"]
    assert sum(1 for e in events if e.event_type == "inference") == len(inferences)


# The story: every figure below is computed from the generated records alone (the candidates' models and texts,
# the judgements), as an analytics report over the log would, never from the generator's hidden qualities.

Story = tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def story() -> Story:
    """The inferences of a 3000-request default run, and each one's valid judgements (redeliveries once)."""
    events = generate(TrafficProfile(requests=3000), START)
    inferences = {e.key: e.record for e in events if e.event_type == "inference" and e.record}
    judgements: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for e in events:
        fb = e.record
        valid = e.event_type == "feedback" and fb and not e.invalid_reason and e.key in inferences
        if valid and fb and fb["feedback_id"] not in seen:
            seen.add(fb["feedback_id"])
            judgements[e.key].append(fb)
    return inferences, judgements


def _version(inference: dict[str, Any], index: int) -> str:
    """The version of the model that produced a candidate: its own model, else the event's."""
    return str((inference["candidates"][index].get("model") or inference["model"])["version"])


def _words(inference: dict[str, Any], index: int) -> int:
    return len(inference["candidates"][index]["text"].split())


def _share(counts: Counter[bool]) -> float:
    return counts[True] / (counts[True] + counts[False])


def test_the_newer_version_wins_most_human_comparisons_with_the_older(story: Story) -> None:
    inferences, judgements = story
    newer_won: Counter[bool] = Counter()
    for rid, fbs in judgements.items():
        for fb in fbs:
            if fb["source"]["type"] != "HUMAN_ANNOTATOR":
                continue
            if fb["kind"] == "PAIRWISE":
                pairs = [(fb["pairwise"]["chosen"], fb["pairwise"]["rejected"])]
            elif fb["kind"] == "RANKING":
                rank = {r["index"]: r["rank"] for r in fb["ranking"]}
                pairs = [(a, b) for a in rank for b in rank if rank[a] < rank[b]]
            else:
                continue
            for chosen, rejected in pairs:
                versions = (_version(inferences[rid], chosen), _version(inferences[rid], rejected))
                if sorted(versions) == ["2026.10", "2026.11"]:
                    newer_won[versions[0] == "2026.11"] += 1
    assert sum(newer_won.values()) > 150
    assert 0.58 < _share(newer_won) < 0.75


def test_end_users_prefer_the_longer_answer_and_candidate_0_annotators_do_not(story: Story) -> None:
    inferences, judgements = story
    longer: dict[str, Counter[bool]] = defaultdict(Counter)
    first: Counter[bool] = Counter()
    for rid, fbs in judgements.items():
        for fb in fbs:
            if fb["kind"] != "PAIRWISE":
                continue
            chosen, rejected = fb["pairwise"]["chosen"], fb["pairwise"]["rejected"]
            if _words(inferences[rid], chosen) != _words(inferences[rid], rejected):
                longer[fb["source"]["type"]][_words(inferences[rid], chosen) > _words(inferences[rid], rejected)] += 1
            if fb["source"]["type"] == "END_USER" and 0 in (chosen, rejected):
                first[chosen == 0] += 1
    users, annotators = _share(longer["END_USER"]), _share(longer["HUMAN_ANNOTATOR"])
    assert sum(longer["END_USER"].values()) > 150 and sum(longer["HUMAN_ANNOTATOR"].values()) > 500
    assert users > 0.58 and users - annotators > 0.08 and 0.44 < annotators < 0.56
    assert _share(first) > 0.52


def test_the_reward_model_agrees_with_the_annotator_on_most_requests(story: Story) -> None:
    _, judgements = story
    agrees: Counter[bool] = Counter()
    for fbs in judgements.values():
        scores = [{s["index"]: s["score"] for s in fb["scores"]} for fb in fbs if fb["kind"] == "SCORES"]
        for fb in fbs:
            if fb["source"]["type"] != "HUMAN_ANNOTATOR":
                continue
            if fb["kind"] == "PAIRWISE":
                best, worst = fb["pairwise"]["chosen"], fb["pairwise"]["rejected"]
            elif fb["kind"] == "RANKING":
                rank = {r["index"]: r["rank"] for r in fb["ranking"]}
                best, worst = min(rank, key=rank.__getitem__), max(rank, key=rank.__getitem__)
                if rank[best] == rank[worst]:
                    continue
            else:
                continue
            agrees.update(score[best] > score[worst] for score in scores)
    assert sum(agrees.values()) > 100
    assert 0.7 < _share(agrees) < 0.9


def test_some_requests_are_judged_by_a_panel_of_annotators(story: Story) -> None:
    _, judgements = story
    panels = 0
    for fbs in judgements.values():
        human = [fb for fb in fbs if fb["source"]["type"] == "HUMAN_ANNOTATOR" and fb["kind"] == "PAIRWISE"]
        if len({fb["source"]["id"] for fb in human}) >= 2:
            panels += 1
            assert len({frozenset(fb["pairwise"].values()) for fb in human}) == 1  # the same pair, judged again
            assert len({fb["source"]["id"] for fb in human}) == len(human) <= 3
    assert panels > 50


def test_arena_candidates_name_their_own_models(story: Story) -> None:
    inferences, _ = story
    arena = [r for r in inferences.values() if any(c.get("model") for c in r["candidates"])]
    assert 0.25 < len(arena) / len(inferences) < 0.45
    for r in arena:
        assert all(c.get("model") for c in r["candidates"])
        assert len({(c["model"]["name"], c["model"]["version"]) for c in r["candidates"]}) == 2
    off = generate(TrafficProfile(requests=200, arena=0.0, panel=0.0), START)
    assert not any(
        c.get("model") for e in off if e.event_type == "inference" and e.record for c in e.record["candidates"]
    )
