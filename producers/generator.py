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

Besides single questions the traffic holds the shapes of today's assistants
(:mod:`.shapes`, :mod:`.images`): multi-turn conversations (turn 0 in full,
each later turn by reference to the previous turn's request and the candidate
the user continued with; some turns judged), agents whose candidates are tool
call trajectories of different lengths, and questions about images the
generator writes as small PNG files.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from .images import ImageShelf
from .shapes import ASKS, STYLES, TOPICS, TURNS, agent_task, follow_up, trajectory
from .story import CANDIDATE_NOISE, MODELS, Candidate, arena_models, feedback, judgements, model_quality
from .truth import GroundTruth, expected_outcomes

__all__ = ["GeneratedEvent", "GroundTruth", "TrafficProfile", "expected_outcomes", "generate"]


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
    # the shapes (see .shapes, .images)
    conversations: float = 0.15  # inference events that are turns of multi-turn conversations (3..8 turns)
    turn_judged: float = 0.5  # conversation turns that get feedback (the others: NO_FEEDBACK)
    turn_gap_s: float = 2.5  # mean event time between a conversation's turns (uniform, 0.5..1.5 times this)
    trajectories: float = 0.10  # requests (and conversations) answered by an agent calling tools
    images: float = 0.10  # requests (and conversations) asking about an image
    broken_images: float = 0.05  # image references broken on purpose: wrong sha256 or a file never written


@dataclass(frozen=True)
class GeneratedEvent:
    """One thing to send, ``at`` seconds after the start."""

    at: float
    event_type: Literal["inference", "feedback", "garbage"]
    key: str
    record: dict[str, Any] | None = None
    raw: bytes | None = None
    invalid_reason: str | None = None
    image_faults: tuple[tuple[str, str], ...] = ()  # (uri, reason) of image references broken on purpose


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class _Ask:
    """What a request (or a conversation's first turn) asks: its text, messages, tools and broken images."""

    topic: str
    prompt: str
    message: dict[str, Any]
    tools: list[dict[str, Any]] | None = None
    image_faults: tuple[tuple[str, str], ...] = ()


@dataclass
class _Run:
    """One run of the generator: its random source, profile and start, and the events so far."""

    rng: random.Random
    p: TrafficProfile
    start: datetime
    shelf: ImageShelf
    events: list[GeneratedEvent] = field(default_factory=list)

    def ask(self) -> _Ask:
        """A question, an agent's task (with tools) or a question about an image."""
        rng, topic = self.rng, self.rng.choice(TOPICS)
        roll = rng.random()
        if roll < self.p.trajectories:
            prompt, tools = agent_task(rng, topic)
            return _Ask(topic, prompt, {"role": "user", "content": prompt}, tools)
        if roll < self.p.trajectories + self.p.images:
            image, prompt, fault = self.shelf.reference(rng, self.p.broken_images)
            faults = ((image["uri"], fault),) if fault else ()
            return _Ask(topic, prompt, {"role": "user", "content": prompt, "images": [image]}, None, faults)
        prompt = rng.choice(ASKS).format(t=topic)
        return _Ask(topic, prompt, {"role": "user", "content": prompt})

    def context(self, session: str | None = None) -> dict[str, Any]:
        rng = self.rng
        return {
            "session_id": session or f"s-{rng.randint(1, self.p.requests // 3 + 1)}",
            "user_id": f"u-{rng.randint(1, 500)}",
            "tenant": rng.choice(["acme", "globex", "initech"]),
            "service": "chat-api",
        }

    def inference(
        self, request_id: str, at: float, ask: _Ask, messages: list[dict[str, Any]], context: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Candidate]]:
        """An inference record, and what judges see of its candidates (with their hidden quality)."""
        rng, p, topic = self.rng, self.p, ask.topic
        n = rng.randint(p.candidates_min, p.candidates_max)
        arena = n >= 2 and rng.random() < p.arena
        models = arena_models(rng, n) if arena else [rng.choice(MODELS)] * n
        name, version, checkpoint = models[0]
        steps = rng.sample(range(4), min(n, 4)) + [rng.randrange(4) for _ in range(n - 4)]  # agents: distinct
        candidates, hidden = [], []
        for i, model in enumerate(models):
            words = rng.randint(12, 60)
            body = " ".join(
                hashlib.sha1(f"{request_id}{i}{w}".encode()).hexdigest()[: rng.randint(3, 9)] for w in range(words)
            )
            text = rng.choice(STYLES).format(t=topic) + body
            candidate: dict[str, Any] = {"index": i, "text": text, "completion_tokens": words * 2}
            candidate["finish_reason"] = rng.choice(["stop", "stop", "length"]) if ask.tools is None else "stop"
            if ask.tools is not None:
                candidate["messages"] = trajectory(rng, ask.tools, steps[i], text, topic)
            if arena:
                candidate["model"] = {"name": model[0], "version": model[1], "checkpoint_hash": model[2]}
            candidates.append(candidate)
            quality = model_quality(model, p.quality_gap) + rng.gauss(0.0, CANDIDATE_NOISE)
            hidden.append(Candidate(i, len(text.split()), quality))
        prompt = str(messages[-1]["content"])
        record = {
            "request_id": request_id,
            "event_time": self.start + timedelta(seconds=at),
            "prompt": prompt,
            "prompt_messages": messages,
            "candidates": candidates,
            "model": {"name": name, "version": version, "checkpoint_hash": checkpoint},
            "prompt_tokens": sum(len(str(m["content"]).split()) for m in messages) * 2,
            "sampling": {
                "temperature": round(rng.uniform(0.2, 1.2), 2),
                "top_p": rng.choice([0.9, 0.95, 1.0]),
                "max_tokens": 512,
                "seed": rng.randint(0, 2**31),
                "extra": {"presence_penalty": "0.0"},
            },
            "context": context,
            "metadata": {"region": rng.choice(["eu-west-1", "us-east-1"])},
        }
        if ask.tools is not None:
            record["tools"] = ask.tools
        return record, hidden

    def single(self, at: float) -> None:
        """A one-turn request, its judgements and the mess around them."""
        rng, p = self.rng, self.p
        request_id, ask = _uuid(rng), self.ask()
        messages = [{"role": "system", "content": "You are a helpful assistant."}, ask.message]
        record, cands = self.inference(request_id, at, ask, messages, self.context())
        orphan = rng.random() < p.orphan_feedback
        if not orphan:
            self.events.append(GeneratedEvent(at, "inference", request_id, record, image_faults=ask.image_faults))
        if rng.random() < p.no_feedback and not orphan:
            return
        self.judge(at, request_id, cands)

    def conversation(self, at: float, turns: int) -> None:
        """A conversation of ``turns`` turns: turn 0 in full, each later one by reference to the one before.

        Every turn's inference is sent (a later turn's history needs it); a share ``turn_judged`` of the turns
        is judged. The user continues with the candidate an end user or annotator chose, else with any.
        """
        rng, p = self.rng, self.p
        conversation_id, ask = _uuid(rng), self.ask()
        context = self.context(f"conv-{conversation_id[:8]}")
        previous: tuple[str, int] | None = None
        for turn in range(turns):
            request_id = _uuid(rng)
            conv: dict[str, Any] = {"id": conversation_id, "turn": turn}
            if previous is None:
                messages = [{"role": "system", "content": "You are a helpful assistant."}, ask.message]
                faults = ask.image_faults
            else:
                at += rng.uniform(0.5, 1.5) * p.turn_gap_s
                messages, faults = [{"role": "user", "content": follow_up(rng)}], ()
                conv |= {"previous_request_id": previous[0], "previous_candidate": previous[1]}
            record, cands = self.inference(request_id, at, ask, messages, context)
            record["conversation"] = conv
            self.events.append(GeneratedEvent(at, "inference", request_id, record, image_faults=faults))
            chosen = self.judge(at, request_id, cands) if rng.random() < p.turn_judged else None
            previous = (request_id, chosen if chosen is not None else rng.randrange(len(cands)))

    def judge(self, at: float, request_id: str, cands: list[Candidate]) -> int | None:
        """The feedback events of one request; returns the candidate a valid PAIRWISE chose first, if any."""
        rng, p = self.rng, self.p
        kinds, weights = zip(*p.kinds.items(), strict=False)
        n, chosen = len(cands), None
        for plan in judgements(rng, p, n, kinds, weights):
            delay = rng.expovariate(1 / p.feedback_delay_s) if p.feedback_delay_s > 0 else 0.0
            fb = feedback(rng, _uuid(rng), request_id, cands, self.start + timedelta(seconds=at + delay), plan, p)
            send_at = at - 0.001 if rng.random() < p.out_of_order else at + delay
            roll = rng.random()
            if roll < p.invalid / 2:
                raw = rng.randbytes(rng.randint(1, 40))
                self.events.append(
                    GeneratedEvent(send_at, "garbage", request_id, raw=raw, invalid_reason="undecodable bytes")
                )
                continue
            if roll < p.invalid:
                fb.pop(fb["kind"].lower())
                fb["kind"] = "PAIRWISE"
                fb["pairwise"] = {"chosen": n + 1, "rejected": 0}
                reason = f"candidate {n + 1} does not exist"
                self.events.append(GeneratedEvent(send_at, "feedback", request_id, fb, invalid_reason=reason))
                continue
            if chosen is None and fb["kind"] == "PAIRWISE":
                chosen = fb["pairwise"]["chosen"]
            self.events.append(GeneratedEvent(send_at, "feedback", request_id, fb))
            if rng.random() < p.duplicates:
                self.events.append(GeneratedEvent(send_at + 0.5, "feedback", request_id, fb))
        return chosen


def generate(
    profile: TrafficProfile, start: datetime | None = None, image_dir: Path | None = None
) -> list[GeneratedEvent]:
    """The events of ``profile`` in the order to send them.

    ``profile.requests`` inference events in all: a conversation's turns count one each, and its turns come
    ``turn_gap_s`` apart (on average) in event time while other requests go on. Pictures asked about are written under
    ``image_dir`` (file:// references to them); without it nothing is written (see :class:`.ImageShelf`).
    """
    rng = random.Random(profile.seed)
    run = _Run(rng, profile, start or datetime.now(timezone.utc).replace(microsecond=0), ImageShelf(image_dir))
    mean = sum(TURNS) / 2
    share = min(max(profile.conversations, 0.0), 1.0)
    begins = share / (mean - (mean - 1) * share)  # per start, so that turns are ``share`` of all inferences
    count = 0
    while count < profile.requests:
        at, left = count / profile.rate, profile.requests - count
        if left >= TURNS[0] and rng.random() < begins:
            turns = rng.randint(TURNS[0], min(TURNS[1], left))
            run.conversation(at, turns)
            count += turns
        else:
            run.single(at)
            count += 1
    run.events.sort(key=lambda e: e.at)
    return run.events
