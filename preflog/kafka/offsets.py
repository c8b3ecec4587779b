"""Consumer-group offsets: where partitions end, what groups committed, and moving a stopped group.

Lag is end offset minus committed offset. End offsets come from the fetch
path (:func:`log_ends`), which is right on real Kafka and on the embedded
broker, whose ListOffsets reports them low (tests/integration/test_broker_quirks.py).

Offsets are named on the command line in one syntax, ``[NAME:][PARTITION=]OFFSET``
(:func:`parse_offset_spec`), by ``preflog offsets reset --to-offset`` (NAME: a
topic) and ``preflog replay --start-offset/--end-offset`` (NAME: inference or
feedback); where several match a partition, the most specific wins.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as ListOffsetSpec

from preflog.errors import PreflogError

from .config import admin_config
from .reader import OFFSET_END, RangeReader, ReadError, Span
from .topics import partition_counts

__all__ = [
    "EndOffsetError",
    "GroupOffsets",
    "LiveGroupError",
    "OffsetSpec",
    "OffsetSpecError",
    "PartitionOffsets",
    "ResetMode",
    "committed_offsets",
    "describe",
    "ensure_idle",
    "log_ends",
    "parse_offset_spec",
    "pick_offset",
    "plan_reset",
    "reset",
    "target_offsets",
]

IDLE_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN}
Where = tuple[str, int]
ResetMode = Literal["earliest", "latest", "datetime", "explicit"]


class EndOffsetError(PreflogError):
    """The broker did not report where a partition ends."""


class LiveGroupError(PreflogError):
    """Offsets of a group with live members cannot be reset (the members would overwrite them)."""


class OffsetSpecError(PreflogError):
    """An offset given on the command line is not ``[NAME:][PARTITION=]OFFSET``."""


# -- offset specs ------------------------------------------------------------------------------------

SPEC = re.compile(r"^(?:(?P<name>[A-Za-z0-9._-]+):)?(?:(?P<partition>\d+)=)?(?P<offset>\d+)$")


@dataclass(frozen=True)
class OffsetSpec:
    """An offset for ``name`` (a topic, or a role such as ``feedback``; None: every one) and ``partition``.

    Attributes:
        name: The topic or role it applies to; None: every topic of the command.
        partition: The partition it applies to; None: every partition.
        offset: The offset.
    """

    name: str | None
    partition: int | None
    offset: int

    def matches(self, name: str | Collection[str], partition: int) -> bool:
        """Whether it applies to ``partition`` of ``name`` (or of any of several names for one topic)."""
        names = {name} if isinstance(name, str) else set(name)
        return (self.name is None or self.name in names) and self.partition in (None, partition)

    @property
    def specificity(self) -> int:
        """A partition counts more than a name; both most."""
        return (self.name is not None) + 2 * (self.partition is not None)


def parse_offset_spec(text: str, names: Sequence[str] | None = None) -> OffsetSpec:
    """Parse ``[NAME:][PARTITION=]OFFSET``, e.g. ``1200``, ``2=1200``, ``feedback:2=1200``, ``my.topic:0=3``.

    Args:
        text: What the user wrote.
        names: The names this command accepts (None: any topic name).

    Raises:
        OffsetSpecError: Not of that form, or a name outside ``names``; the message shows the form.
    """
    m = SPEC.match(text.strip())
    if m is None or (names is not None and m["name"] is not None and m["name"] not in names):
        prefix = "|".join(f"{n}:" for n in names) if names else "TOPIC:"
        example = names[-1] if names else "TOPIC"
        raise OffsetSpecError(
            f"bad offset {text!r}: write [{prefix}][PARTITION=]OFFSET, "
            f"e.g. 1200 (every partition), 2=1200, or {example}:2=1200"
        )
    partition = m["partition"]
    return OffsetSpec(m["name"], int(partition) if partition is not None else None, int(m["offset"]))


def pick_offset(specs: Iterable[OffsetSpec], name: str | Collection[str], partition: int) -> int | None:
    """The offset of the most specific spec for ``partition`` of ``name`` (the last one given on a tie)."""
    matching = sorted((s for s in specs if s.matches(name, partition)), key=lambda s: s.specificity)
    return matching[-1].offset if matching else None


# -- where partitions end, and what groups committed --------------------------------------------------


def log_ends(config: Mapping[str, Any], tps: Sequence[Where], timeout: float = 60.0) -> dict[Where, int]:
    """The offset after the last record of each partition, as the fetch path reports it.

    A reader starts at the end ListOffsets reports and reads until each
    partition reports end-of-partition. On real Kafka that is immediate and
    gives the same figure; the embedded broker's ListOffsets is low and the
    fetch reads on to the true end.

    Raises:
        EndOffsetError: No end-of-partition within ``timeout`` s, or a fatal client error.
    """
    spans = [Span(t, p, OFFSET_END) for t, p in tps]
    extra = {"fetch.max.bytes": 1024 * 1024}
    try:
        with RangeReader(
            config, "preflog-log-ends", spans, timeout=timeout, strict=False, batch=1000, extra=extra
        ) as r:
            for _ in r.batches():
                pass  # the records between ListOffsets' end and the true one: only their end counts
    except ReadError as exc:
        raise EndOffsetError(f"finding where partitions end: {exc}") from exc
    return {tp: r.ends[tp] for tp in tps}


def committed_offsets(admin: AdminClient, group: str) -> dict[Where, int]:
    """The offsets ``group`` committed (partitions without a commit are left out)."""
    found = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in found.topic_partitions if tp.offset >= 0}


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition of a group: committed offset (None: never), end offset, and the lag between them."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int | None:
        """End minus committed offset (None: nothing committed)."""
        return None if self.committed is None else max(self.end - self.committed, 0)


@dataclass(frozen=True)
class GroupOffsets:
    """A group's state, member count and offsets."""

    group: str
    state: str
    members: int
    partitions: list[PartitionOffsets]

    @property
    def live(self) -> bool:
        """Whether the group has members or is not idle (its offsets must not be reset)."""
        return _live(self.members, self.state)


def _live(members: int, state: str) -> bool:
    """Whether a group with ``members`` in ``state`` (a ConsumerGroupState name) is live: its offsets stay put."""
    return members > 0 or state not in {s.name for s in IDLE_STATES}


def describe(config: Mapping[str, Any], group: str, topics: Iterable[str]) -> GroupOffsets:
    """Committed offsets, end offsets and lag of ``group`` on ``topics``, and whether it has live members.

    With no ``topics`` (a group preflog does not name), the topics it committed offsets for.
    """
    admin = AdminClient(admin_config(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    committed = committed_offsets(admin, group)
    metadata = admin.list_topics(timeout=10).topics
    topics = list(topics) or sorted({t for t, _ in committed})
    tps = [(t, p) for t in topics if t in metadata for p in sorted(metadata[t].partitions)]
    ends = log_ends(config, tps)
    rows = [PartitionOffsets(t, p, committed.get((t, p)), ends[(t, p)]) for t, p in tps]
    return GroupOffsets(group, info.state.name, len(info.members), rows)


# -- moving a stopped group ----------------------------------------------------------------------------


def _list_offsets(admin: AdminClient, tps: Iterable[Where], spec: Any) -> dict[Where, int]:
    request = {TopicPartition(t, p): spec for t, p in tps}
    if not request:
        return {}
    return {(tp.topic, tp.partition): f.result(timeout=30).offset for tp, f in admin.list_offsets(request).items()}


def target_offsets(
    config: Mapping[str, Any],
    tps: Iterable[Where],
    to: ResetMode,
    when: datetime | None = None,
    specs: Sequence[OffsetSpec] = (),
) -> dict[Where, int]:
    """Where each partition would go.

    Args:
        config: The cluster's client configuration.
        tps: The partitions.
        to: ``earliest``, ``latest`` (the end a fetch reports), ``datetime`` (the first offset at or after
            ``when``; the end where there is none) or ``explicit`` (``specs``; partitions no spec names stay out).
        when: For ``datetime``.
        specs: For ``explicit``.
    """
    admin = AdminClient(admin_config(config))
    tps = list(tps)
    if to == "earliest":
        return _list_offsets(admin, tps, ListOffsetSpec.earliest())
    if to == "latest":
        return log_ends(config, tps)
    if to == "datetime":
        assert when is not None
        found = _list_offsets(admin, tps, ListOffsetSpec.for_timestamp(int(when.timestamp() * 1000)))
        latest = log_ends(config, tps)
        return {tp: (off if off >= 0 else latest[tp]) for tp, off in found.items()}
    picked = {(t, p): pick_offset(specs, t, p) for t, p in tps}
    return {tp: off for tp, off in picked.items() if off is not None}


def plan_reset(
    config: Mapping[str, Any],
    topics: Iterable[str],
    to: ResetMode,
    when: datetime | None = None,
    specs: Sequence[OffsetSpec] = (),
) -> dict[Where, int]:
    """:func:`target_offsets` for every partition of ``topics`` and of the topics ``specs`` name."""
    names = list(dict.fromkeys([*topics, *(s.name for s in specs if s.name is not None)]))
    counts = partition_counts(config, names)
    return target_offsets(config, [(t, p) for t in names for p in range(counts.get(t, 0))], to, when, specs)


def ensure_idle(config: Mapping[str, Any], group: str) -> AdminClient:
    """Check that ``group`` has no live members, before its offsets are planned or moved.

    Returns:
        The admin client it asked (for the reset that follows).

    Raises:
        LiveGroupError: The group is active; the message names the fix.
    """
    admin = AdminClient(admin_config(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    if _live(len(info.members), info.state.name):
        members = f"{len(info.members)} member(s)" if info.members else "members the broker does not list"
        raise LiveGroupError(
            f"group {group} is active ({info.state.name.lower()}, {members}); stop its processes (preflog process "
            "/ preflog sink; under preflog up, stop up, which also empties its in-memory broker) first, then reset"
        )
    return admin


def reset(config: Mapping[str, Any], group: str, offsets: Mapping[Where, int]) -> None:
    """Commit ``offsets`` for ``group``.

    Raises:
        LiveGroupError: The group has live members (they would overwrite the offsets); the message names the fix.
    """
    admin = ensure_idle(config, group)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)
