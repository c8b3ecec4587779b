"""Pure functions that turn one judgement into preference pairs or unpaired signals.

* PAIRWISE -> one pair.
* RANKING over n candidates -> every ordered pair the ranking decides (ties
  yield none); n distinct ranks give n(n-1)/2 pairs.
* SCORES -> pairs whose score difference exceeds ``score_margin``; mode
  ``all`` (every such pair) or ``best-vs-worst`` (at most one pair).
* RATING and IMPLICIT judge one output: they become unpaired signals.

pair_id is a UUIDv5 of (feedback_id, chosen, rejected), so the same
judgement gives the same ids on every run and replay.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from preflog.privacy.envelope import sealed

__all__ = ["Preference", "ScoreMode", "expand", "no_pairs_detail", "pair_id", "signal_id", "uuid5_text"]

NAMESPACE = uuid.UUID("6d1c2a52-8a6e-4c1b-9b0f-5f1d0f4b7a10")
ScoreMode = Literal["all", "best-vs-worst"]


class Preference(NamedTuple):
    """Candidate ``chosen`` preferred over ``rejected``, with scores when the judge gave them."""

    chosen: int
    rejected: int
    chosen_score: float | None = None
    rejected_score: float | None = None
    margin: float | None = None


_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building a UUID object (the same text, byte for byte)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def pair_id(feedback_id: str, chosen: int, rejected: int) -> str:
    """Deterministic id of one pair: the UUIDv5 of ``pair:<feedback_id>:<chosen>:<rejected>``."""
    return uuid5_text(f"pair:{feedback_id}:{chosen}:{rejected}")


def signal_id(feedback_id: str, index: int) -> str:
    """Deterministic id of one unpaired signal: the UUIDv5 of ``signal:<feedback_id>:<index>``."""
    return uuid5_text(f"signal:{feedback_id}:{index}")


def expand(feedback: Mapping[str, Any], score_margin: float = 0.0, score_mode: ScoreMode = "all") -> list[Preference]:
    """The preferences a (validated) PAIRWISE, RANKING or SCORES feedback decides; [] for other kinds."""
    kind = feedback["kind"]
    if kind == "PAIRWISE":
        choice = feedback["pairwise"]
        return [Preference(choice["chosen"], choice["rejected"])]
    if kind == "RANKING":
        ranks = sorted((e["rank"], e["index"]) for e in feedback["ranking"])
        return [
            Preference(better, worse, margin=float(worse_rank - better_rank))
            for k, (better_rank, better) in enumerate(ranks)
            for worse_rank, worse in ranks[k + 1 :]
            if worse_rank > better_rank
        ]
    if kind == "SCORES":
        scores = sorted(((e["score"], e["index"]) for e in feedback["scores"]), key=lambda s: (-s[0], s[1]))
        if score_mode == "best-vs-worst":
            scores = [scores[0], scores[-1]]
        return [
            Preference(hi_i, lo_i, hi, lo, hi - lo)
            for k, (hi, hi_i) in enumerate(scores)
            for lo, lo_i in scores[k + 1 :]
            if hi - lo > score_margin
        ]
    return []


def no_pairs_detail(feedback: Mapping[str, Any], score_margin: float, score_mode: ScoreMode) -> str:
    """Why a PAIRWISE, RANKING or SCORES feedback decided no pair."""
    if feedback["kind"] == "RANKING":
        return "every candidate in the ranking has the same rank: a ranking of ties decides no pair"
    return (
        f"no two scores differ by more than score_margin={score_margin} (score_mode={score_mode}): "
        "the scores decide no pair"
    )


def tenant_problem(inference: Mapping[str, Any], feedback: Mapping[str, Any]) -> str | None:
    """Why ``feedback`` may not judge ``inference`` across tenants, or None.

    Feedback sent through the ingestion API carries its key's tenant in ``metadata['preflog.tenant']``;
    it may only judge an inference of that tenant (``context.tenant``). Feedback without it (the SDK) is
    not checked.
    """
    tenant = (feedback.get("metadata") or {}).get("preflog.tenant")
    if tenant is None:
        return None
    owner = (inference.get("context") or {}).get("tenant")
    if owner == tenant:
        return None
    return f"feedback of tenant {tenant!r} for an inference of tenant {owner!r}: a key may only judge its own tenant's"


def resealed_digest(inference: Mapping[str, Any]) -> bytes | None:
    """For a sealed inference: a digest equal for the same event sealed again, else None.

    Sealing draws a new nonce (and a producer process its own data key), so an inference sent again with
    the same request_id (a client's retry through the ingestion API) has other bytes. Its digest masks the
    sealed texts and the key id: a retry is a duplicate, not a ConflictingInference. (Two different
    events that differ only in their sealed texts read as the same here: the first is kept.)
    """
    metadata = inference.get("metadata") or {}
    if "preflog.key" not in metadata:
        return None

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return "<sealed>" if sealed(value) else value
        if isinstance(value, Mapping):
            return {k: mask(v) for k, v in value.items() if k != "preflog.key"}
        if isinstance(value, (list, tuple)):
            return [mask(v) for v in value]
        return value

    return hashlib.sha256(b"resealed:" + json.dumps(mask(inference), sort_keys=True, default=str).encode()).digest()
