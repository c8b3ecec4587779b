"""What the processor tests share: decoded outputs, the producer fixture, expected pairs of generated traffic."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from typing import Any

from preflog.processors.pairs import expand, pair_id
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.tables import TABLES
from preflog.settings import TopicSettings

from ..conftest import T0
from ..kafka_helpers import read_topic

CODEC = SingleObjectCodec()


def outputs(
    config: dict[str, Any],
    topics: TopicSettings,
    role: str,
    expect: int,
    timeout: float = 45,
    settle: float = 2,
    ids: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Decoded output records; with ``ids``, waits until every one of those pair_ids has arrived."""
    topic = getattr(topics, role)

    def done(msgs: list[Any]) -> bool:
        if ids is None:
            return len(msgs) >= expect
        return ids <= {CODEC.decode(m.value(), TABLES[role].record, topic)["pair_id"] for m in msgs}

    msgs = read_topic(config, topic, topics.partitions, expect, timeout=timeout, settle=settle, done=done)
    return [CODEC.decode(m.value() or b"", TABLES[role].record, topic) for m in msgs]


def at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


def expected_pairs(events: list[Any]) -> set[str]:
    """What one correct worker produces for generated traffic (all within the window; invalid events make none)."""
    inferences = {e.key for e in events if e.event_type == "inference" and e.invalid_reason is None}
    ids = set()
    for e in events:
        if e.event_type == "feedback" and e.invalid_reason is None and e.key in inferences and e.record:
            ids |= {pair_id(e.record["feedback_id"], p.chosen, p.rejected) for p in expand(e.record)}
    return ids


def clean_traffic(requests: int) -> list[Any]:
    return generate(TrafficProfile(requests=requests, invalid=0.0, rate=50), start=T0)


def metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )
