"""The story generated traffic tells, for an analytics report to find.

Each model version has a hidden quality; each candidate a latent quality (its
model's plus noise). Judges decide from it, each in its own way:

* ``HUMAN_ANNOTATOR`` (PAIRWISE, RANKING): Bradley-Terry in the quality
  difference, sharp, no length or position bias.
* ``END_USER`` (PAIRWISE, RATING, IMPLICIT): noisier on quality, a length
  bias (a logit bonus per 10 words one answer is longer) and a small position
  bias toward candidate 0.
* ``REWARD_MODEL`` (SCORES): quality plus noise (version 8 a little less noisy
  than 7), agreeing with the annotators on most pairs.

Arena requests compare candidates of different models (each candidate names
its own ``model``); the A/B match-up acme-chat 2026.10 vs 2026.11 is the
commonest.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .generator import TrafficProfile

__all__ = ["MODELS", "SIGNALS", "Candidate", "Judge", "Plan", "arena_models", "feedback", "judgements", "model_quality"]

Model = tuple[str, str, str | None]  # name, version, checkpoint_hash

MODELS: list[Model] = [
    ("acme-chat", "2026.10", "sha256:5f1c"),
    ("acme-chat", "2026.11", "sha256:9a07"),
    ("acme-mini", "1.4", None),
]
#: each model's hidden quality, in units of the quality gap between acme-chat 2026.10 and 2026.11
QUALITY_STEPS = {MODELS[0]: 0.0, MODELS[1]: 1.0, MODELS[2]: -1.0}
#: arena match-ups and their weights: mostly the A/B test of the two acme-chat versions
MATCHUPS: list[tuple[Model, Model]] = [(MODELS[0], MODELS[1]), (MODELS[0], MODELS[2]), (MODELS[1], MODELS[2])]
MATCHUP_WEIGHTS = [0.6, 0.2, 0.2]
#: implicit signals and whether each is a positive one
SIGNALS = [("copy", True), ("thumbs_regenerate", False), ("dwell", True), ("edit", False), ("share", True)]

CANDIDATE_NOISE = 1.0  # sd of a candidate's quality around its model's
HUMAN_SHARPNESS = 2.0  # an annotator's logit per unit of quality difference
USER_SHARPNESS = 1.0  # an end user's: noisier
RM_NOISE = {"7": 0.55, "8": 0.4}  # sd of the reward model's error on a candidate's quality, per version
RM_SCALE = 2.0  # reward model scores are quality x this
THUMBS_UP_BIAS = 0.4  # logit of a thumbs up for an answer of quality 0


def model_quality(model: Model, quality_gap: float) -> float:
    """The hidden quality of ``model``: acme-chat 2026.11 ``quality_gap`` above 2026.10, acme-mini as far below."""
    return QUALITY_STEPS.get(model, 0.0) * quality_gap


def arena_models(rng: random.Random, n: int) -> list[Model]:
    """The models of ``n`` arena candidates: a weighted match-up of two, each model at least once."""
    a, b = rng.choices(MATCHUPS, MATCHUP_WEIGHTS)[0]
    models = [a, b] + [rng.choice([a, b]) for _ in range(n - 2)]
    rng.shuffle(models)
    return models


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class Candidate:
    """What a judge sees of a candidate (its index and length) and what it cannot (its latent quality)."""

    index: int
    words: int
    quality: float


@dataclass(frozen=True)
class Judge:
    """How a judge of the traffic decides; ``length_bias`` is in logits per 10 words, ``position_bias`` toward 0."""

    length_bias: float = 0.5
    position_bias: float = 0.3

    def prefers(self, rng: random.Random, a: Candidate, b: Candidate, end_user: bool) -> bool:
        """Whether a judge (an end user, else an annotator) prefers ``a`` to ``b``: logistic in the difference."""
        if not end_user:
            return rng.random() < _sigmoid(HUMAN_SHARPNESS * (a.quality - b.quality))
        logit = USER_SHARPNESS * (a.quality - b.quality) + self.length_bias * (a.words - b.words) / 10
        logit += self.position_bias * ((a.index == 0) - (b.index == 0))
        return rng.random() < _sigmoid(logit)

    def pairwise(
        self, rng: random.Random, cands: list[Candidate], pair: tuple[int, int], end_user: bool
    ) -> dict[str, int]:
        """A PAIRWISE payload over ``pair`` (candidate indices), decided by an end user or an annotator."""
        a, b = cands[pair[0]], cands[pair[1]]
        chosen, rejected = (a, b) if self.prefers(rng, a, b, end_user) else (b, a)
        return {"chosen": chosen.index, "rejected": rejected.index}

    @staticmethod
    def ranking(rng: random.Random, cands: list[Candidate]) -> list[dict[str, int]]:
        """An annotator's RANKING: Plackett-Luce (quality plus Gumbel noise); one in five ties with the one above."""
        utility = {c.index: HUMAN_SHARPNESS * c.quality - math.log(-math.log(rng.random() or 1e-12)) for c in cands}
        order = sorted(utility, key=lambda i: -utility[i])
        ranks: list[int] = []
        for k in range(len(order)):
            ranks.append(ranks[-1] if k and rng.random() < 0.2 else k + 1)
        ranking = [{"index": i, "rank": r} for i, r in zip(order, ranks, strict=True)]
        rng.shuffle(ranking)
        return ranking

    @staticmethod
    def scores(rng: random.Random, cands: list[Candidate], version: str) -> list[dict[str, Any]]:
        """A reward model's SCORES: quality plus the version's noise, scaled."""
        noise = RM_NOISE.get(version, max(RM_NOISE.values()))
        return [{"index": c.index, "score": round(RM_SCALE * (c.quality + rng.gauss(0.0, noise)), 4)} for c in cands]

    @staticmethod
    def thumbs(rng: random.Random, cand: Candidate) -> bool:
        """An end user's thumbs up (True) or down on one candidate, from its quality."""
        return rng.random() < _sigmoid(THUMBS_UP_BIAS + USER_SHARPNESS * 1.5 * cand.quality)

    @staticmethod
    def signal(rng: random.Random, cand: Candidate) -> tuple[str, bool]:
        """An implicit signal on one candidate: positive (copy, dwell, share) more likely the better it is."""
        label = Judge.thumbs(rng, cand)
        return rng.choice([s for s in SIGNALS if s[1] == label])


#: one judgement to make: its kind, the pair to compare, the annotator (None: left to chance and the profile)
Plan = tuple[str, tuple[int, int] | None, str | None]


def judgements(
    rng: random.Random, p: TrafficProfile, n: int, kinds: tuple[str, ...], weights: tuple[float, ...]
) -> list[Plan]:
    """The judgements a request gets.

    One of a kind drawn from ``kinds``; or (``extra_feedback``) two on the same request, an annotator's PAIRWISE
    or RANKING and then the reward model's SCORES, or (``panel`` of those) a PAIRWISE of the same pair by each of
    2..``judges_per_request`` different annotators.
    """
    extra = rng.random() < p.extra_feedback
    if extra and p.judges_per_request >= 2 and "PAIRWISE" in kinds and rng.random() < p.panel:
        a, b = rng.sample(range(n), 2)
        annotators = rng.sample(range(1, 41), rng.randint(2, min(p.judges_per_request, 40)))
        return [("PAIRWISE", (a, b), f"annotator-{k}") for k in annotators]
    if not extra:
        return [(rng.choices(kinds, weights)[0], None, None)]
    human = [(k, w) for k, w in zip(kinds, weights, strict=True) if k in ("PAIRWISE", "RANKING") and w > 0]
    if not human:  # no human kinds asked for: any kind, then the reward model
        return [(rng.choices(kinds, weights)[0], None, None), ("SCORES", None, None)]
    kind = rng.choices([k for k, _ in human], [w for _, w in human])[0]  # an annotator, then the reward model
    return [(kind, None, f"annotator-{rng.randint(1, 40)}"), ("SCORES", None, None)]


def feedback(
    rng: random.Random,
    feedback_id: str,
    request_id: str,
    cands: list[Candidate],
    when: datetime,
    plan: Plan,
    p: TrafficProfile,
) -> dict[str, Any]:
    """The feedback record of one planned judgement on the candidates ``cands`` of ``request_id``."""
    kind, pair, annotator = plan
    fb: dict[str, Any] = {"feedback_id": feedback_id, "request_id": request_id, "event_time": when, "kind": kind}
    n = len(cands)
    judge = Judge(p.length_bias, p.position_bias)
    if kind == "PAIRWISE":
        a, b = pair or rng.sample(range(n), 2)
        end_user = annotator is None and rng.random() < p.user_pairwise
        fb["pairwise"] = judge.pairwise(rng, cands, (a, b), end_user)
        if end_user:
            fb["source"] = {"type": "END_USER", "id": f"u-{rng.randint(1, 500)}"}
        else:
            annotator = annotator or f"annotator-{rng.randint(1, 40)}"
            fb["source"] = {"type": "HUMAN_ANNOTATOR", "id": annotator, "version": "guidelines-v3"}
            fb["rationale"] = rng.choice([None, "more accurate", "clearer and shorter", "follows the instructions"])
    elif kind == "RANKING":
        fb["ranking"] = judge.ranking(rng, cands)
        annotator = annotator or f"annotator-{rng.randint(1, 40)}"
        fb["source"] = {"type": "HUMAN_ANNOTATOR", "id": annotator, "version": "guidelines-v3"}
    elif kind == "SCORES":
        version = rng.choice(["7", "8"])
        fb["scores"] = judge.scores(rng, cands, version)
        fb["source"] = {"type": "REWARD_MODEL", "id": "rm-prod", "name": "acme-rm", "version": version}
    elif kind == "RATING":
        judged = cands[rng.randrange(n)]
        fb["rating"] = {"index": judged.index, "label": judge.thumbs(rng, judged), "scale": "thumbs"}
        fb["source"] = {"type": "END_USER", "id": f"u-{rng.randint(1, 500)}"}
    else:
        judged = cands[rng.randrange(n)]
        signal, label = judge.signal(rng, judged)
        value = round(rng.uniform(1, 90), 1)
        fb["implicit"] = {"index": judged.index, "signal": signal, "label": label, "value": value}
        fb["source"] = {"type": "END_USER", "id": f"u-{rng.randint(1, 500)}"}
        fb["explicit"] = False
    return fb
