"""Consumer-group offsets of preflog's processes: show them with lag, and reset them safely.

Lag is end offset minus committed offset, with the end offset from ListOffsets
(latest): that is what Kafka itself reports and it is right on real Kafka. The
embedded broker's ListOffsets is wrong (see tests/integration/test_broker_quirks.py),
so output names where the end offsets come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from preflog.errors import PreflogError

__all__ = ["GroupOffsets", "LiveGroupError", "describe", "reset", "target_offsets"]

IDLE_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN}


class LiveGroupError(PreflogError):
    """Offsets of a group with live members cannot be reset (the members would overwrite them)."""


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end - self.committed, 0)


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    state: str
    members: int
    partitions: list[PartitionOffsets]

    @property
    def live(self) -> bool:
        return self.members > 0 or self.state not in {s.name for s in IDLE_STATES}


def _list_offsets(admin: AdminClient, tps: Iterable[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
    request = {TopicPartition(t, p): spec for t, p in tps}
    if not request:
        return {}
    return {(tp.topic, tp.partition): f.result(timeout=30).offset for tp, f in admin.list_offsets(request).items()}


def describe(config: Mapping[str, Any], group: str, topics: Iterable[str]) -> GroupOffsets:
    """Committed offsets, end offsets and lag of ``group`` on ``topics``, and whether it has live members."""
    admin = AdminClient(dict(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    committed_list = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    committed = {(tp.topic, tp.partition): tp.offset for tp in committed_list.topic_partitions if tp.offset >= 0}
    metadata = admin.list_topics(timeout=10).topics
    tps = [(t, p) for t in topics if t in metadata for p in sorted(metadata[t].partitions)]
    ends = _list_offsets(admin, tps, OffsetSpec.latest())
    rows = [PartitionOffsets(t, p, committed.get((t, p)), ends[(t, p)]) for t, p in tps]
    return GroupOffsets(group, info.state.name, len(info.members), rows)


def target_offsets(
    config: Mapping[str, Any],
    tps: Iterable[tuple[str, int]],
    to: str,
    when: datetime | None = None,
    explicit: Mapping[tuple[str, int], int] | None = None,
) -> dict[tuple[str, int], int]:
    """Where each partition would go: ``earliest``, ``latest``, ``datetime`` (first offset at or after ``when``)
    or ``explicit`` offsets."""
    admin = AdminClient(dict(config))
    tps = list(tps)
    if to == "earliest":
        return _list_offsets(admin, tps, OffsetSpec.earliest())
    if to == "latest":
        return _list_offsets(admin, tps, OffsetSpec.latest())
    if to == "datetime":
        assert when is not None
        found = _list_offsets(admin, tps, OffsetSpec.for_timestamp(int(when.timestamp() * 1000)))
        latest = _list_offsets(admin, tps, OffsetSpec.latest())
        return {tp: (off if off >= 0 else latest[tp]) for tp, off in found.items()}
    return {tp: off for tp, off in (explicit or {}).items() if tp in set(tps)}


def reset(config: Mapping[str, Any], group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for ``group``; refuses while the group has live members."""
    admin = AdminClient(dict(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    if info.members or info.state not in IDLE_STATES:
        raise LiveGroupError(
            f"group {group} is {info.state.name.lower()} with {len(info.members)} member(s); stop its processes "
            "(preflog process / preflog sink) first, then reset"
        )
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)
