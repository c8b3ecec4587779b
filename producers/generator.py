"""Realistic synthetic traffic for demos, tests and benchmarks.

A seeded :class:`TrafficProfile` gives the same events every time: inference
events with 2..N candidates, feedback of every kind after an exponential
event-time delay, and the mess production brings: feedback that never comes,
feedback whose inference never comes, duplicates, feedback sent before its
inference, and invalid records (undecodable bytes, impossible candidate
indices).

The traffic tells a story (:mod:`.story`): model versions of different hidden
quality, arena requests comparing them, annotators, end users (length- and
position-biased) and a reward model judging from the candidates' latent
quality, and requests judged twice (a reward model beside a human) or by a
panel of annotators.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .story import CANDIDATE_NOISE, MODELS, Candidate, arena_models, feedback, judgements, model_quality

__all__ = ["GeneratedEvent", "GroundTruth", "TrafficProfile", "expected_outcomes", "generate"]

TOPICS = [
    "sourdough starter",
    "Kafka consumer lag",
    "a haiku about autumn",
    "Python type hints",
    "the French Revolution",
    "unit tests for a parser",
    "a polite refund email",
    "black holes",
    "SQL window functions",
    "a bedtime story about a fox",
    "RLHF vs DPO",
    "tax brackets",
]
ASKS = [
    "Explain {t} to a beginner.",
    "Write a short note about {t}.",
    "What are common mistakes with {t}?",
    "Summarise {t} in three sentences.",
    "Give me a checklist for {t}.",
]
STYLES = [
    "Sure! Here is a concise take on {t}: ",
    "Great question. {t} comes down to this: ",
    "In short, {t} means ",
    "Let's break {t} down step by step. First, ",
    "Here's what matters about {t}: ",
]


@dataclass(frozen=True)
class TrafficProfile:
    """What to generate. Shares are probabilities per request."""

    requests: int = 200
    rate: float = 20.0  # requests per second of event time (and of wall time when paced)
    candidates_min: int = 2
    candidates_max: int = 4
    feedback_delay_s: float = 3.0  # mean of the exponential feedback delay, event time
    no_feedback: float = 0.10  # inference that never gets feedback
    orphan_feedback: float = 0.02  # feedback whose inference never comes
    extra_feedback: float = 0.15  # a second judgement (e.g. a reward model) on the same request
    duplicates: float = 0.03  # feedback delivered twice (producer retry)
    out_of_order: float = 0.05  # feedback sent before its inference
    invalid: float = 0.02  # undecodable bytes or an impossible candidate index
    seed: int = 7
    kinds: dict[str, float] = field(
        default_factory=lambda: {"PAIRWISE": 0.4, "RANKING": 0.15, "SCORES": 0.2, "RATING": 0.15, "IMPLICIT": 0.1}
    )
    # the story (see .story): who judges, how, and what there is to find
    arena: float = 0.35  # requests whose candidates come from two different models (each candidate names its own)
    quality_gap: float = 0.6  # hidden quality of acme-chat 2026.11 over 2026.10 (acme-mini as far below 2026.10)
    user_pairwise: float = 0.3  # PAIRWISE judgements by end users (the rest by annotators)
    length_bias: float = 0.5  # end users' extra logit per 10 words one answer is longer
    position_bias: float = 0.3  # end users' extra logit for candidate 0
    panel: float = 0.4  # of the requests judged twice (extra_feedback), those judged by a panel of annotators instead
    judges_per_request: int = 3  # the most annotators on a panel (2..this, each a PAIRWISE on the same pair)


@dataclass(frozen=True)
class GeneratedEvent:
    """One thing to send, ``at`` seconds after the start."""

    at: float
    event_type: Literal["inference", "feedback", "garbage"]
    key: str
    record: dict[str, Any] | None = None
    raw: bytes | None = None
    invalid_reason: str | None = None


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _inference(
    rng: random.Random, request_id: str, when: datetime, p: TrafficProfile
) -> tuple[dict[str, Any], list[Candidate]]:
    """An inference record, and what judges see of its candidates (with their hidden quality)."""
    topic = rng.choice(TOPICS)
    prompt = rng.choice(ASKS).format(t=topic)
    n = rng.randint(p.candidates_min, p.candidates_max)
    arena = n >= 2 and rng.random() < p.arena
    models = arena_models(rng, n) if arena else [rng.choice(MODELS)] * n
    name, version, checkpoint = models[0]
    candidates, hidden = [], []
    for i, model in enumerate(models):
        words = rng.randint(12, 60)
        body = " ".join(
            hashlib.sha1(f"{request_id}{i}{w}".encode()).hexdigest()[: rng.randint(3, 9)] for w in range(words)
        )
        candidate: dict[str, Any] = {
            "index": i,
            "text": rng.choice(STYLES).format(t=topic) + body,
            "completion_tokens": words * 2,
            "finish_reason": rng.choice(["stop", "stop", "length"]),
        }
        if arena:
            candidate["model"] = {"name": model[0], "version": model[1], "checkpoint_hash": model[2]}
        candidates.append(candidate)
        quality = model_quality(model, p.quality_gap) + rng.gauss(0.0, CANDIDATE_NOISE)
        hidden.append(Candidate(i, len(candidate["text"].split()), quality))
    record = {
        "request_id": request_id,
        "event_time": when,
        "prompt": prompt,
        "prompt_messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": prompt},
        ],
        "candidates": candidates,
        "model": {"name": name, "version": version, "checkpoint_hash": checkpoint},
        "prompt_tokens": len(prompt.split()) * 2,
        "sampling": {
            "temperature": round(rng.uniform(0.2, 1.2), 2),
            "top_p": rng.choice([0.9, 0.95, 1.0]),
            "max_tokens": 512,
            "seed": rng.randint(0, 2**31),
            "extra": {"presence_penalty": "0.0"},
        },
        "context": {
            "session_id": f"s-{rng.randint(1, p.requests // 3 + 1)}",
            "user_id": f"u-{rng.randint(1, 500)}",
            "tenant": rng.choice(["acme", "globex", "initech"]),
            "service": "chat-api",
        },
        "metadata": {"region": rng.choice(["eu-west-1", "us-east-1"])},
    }
    return record, hidden


def generate(profile: TrafficProfile, start: datetime | None = None) -> list[GeneratedEvent]:
    """The events of ``profile`` in the order to send them."""
    rng = random.Random(profile.seed)
    start = start or datetime.now(timezone.utc).replace(microsecond=0)
    kinds, weights = zip(*profile.kinds.items(), strict=False)
    events: list[GeneratedEvent] = []
    for i in range(profile.requests):
        at = i / profile.rate
        request_id = _uuid(rng)
        record, cands = _inference(rng, request_id, start + timedelta(seconds=at), profile)
        n = len(cands)
        orphan = rng.random() < profile.orphan_feedback
        if not orphan:
            events.append(GeneratedEvent(at, "inference", request_id, record))
        if rng.random() < profile.no_feedback and not orphan:
            continue
        for plan in judgements(rng, profile, n, kinds, weights):
            delay = rng.expovariate(1 / profile.feedback_delay_s) if profile.feedback_delay_s > 0 else 0.0
            when = start + timedelta(seconds=at + delay)
            fb = feedback(rng, _uuid(rng), request_id, cands, when, plan, profile)
            send_at = at - 0.001 if rng.random() < profile.out_of_order else at + delay
            roll = rng.random()
            if roll < profile.invalid / 2:
                events.append(
                    GeneratedEvent(
                        send_at,
                        "garbage",
                        request_id,
                        raw=rng.randbytes(rng.randint(1, 40)),
                        invalid_reason="undecodable bytes",
                    )
                )
                continue
            if roll < profile.invalid:
                fb.pop(fb["kind"].lower())
                fb["kind"] = "PAIRWISE"
                fb["pairwise"] = {"chosen": n + 1, "rejected": 0}
                events.append(
                    GeneratedEvent(
                        send_at, "feedback", request_id, fb, invalid_reason=f"candidate {n + 1} does not exist"
                    )
                )
                continue
            events.append(GeneratedEvent(send_at, "feedback", request_id, fb))
            if rng.random() < profile.duplicates:
                events.append(GeneratedEvent(send_at + 0.5, "feedback", request_id, fb))
    events.sort(key=lambda e: e.at)
    return events


@dataclass
class GroundTruth:
    """What a correct pipeline makes of generated events, decided from the generator's own choices.

    Ids are strings; pairs are ``(feedback_id, chosen_index, rejected_index)``, signals
    ``(feedback_id, index)``. ``unmatched`` maps a reason (NO_FEEDBACK: request_ids,
    NO_INFERENCE and NO_PAIRS: feedback_ids) to ids; ``dead_letters`` lists the invalid
    events (each expected once as a dead letter, with its reason).
    """

    pairs: set[tuple[str, int, int]] = field(default_factory=set)
    signals: set[tuple[str, int]] = field(default_factory=set)
    unmatched: dict[str, set[str]] = field(default_factory=dict)
    dead_letters: list[GeneratedEvent] = field(default_factory=list)
    duplicates: int = 0  # redelivered feedback, expected to be counted once


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
    """
    truth = GroundTruth()
    candidates = {e.key: len(e.record["candidates"]) for e in events if e.event_type == "inference" and e.record}
    judged: set[str] = set()
    seen: set[str] = set()

    def no_pairs(fid: str) -> None:
        truth.unmatched.setdefault("NO_PAIRS", set()).add(fid)

    for e in events:
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
