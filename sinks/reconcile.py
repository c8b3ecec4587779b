"""``preflog reconcile``: account for every record, from the input topics through the output topics to the files.

It reads every partition of the six topics to its end (the fetch path, not
ListOffsets: see notes on the embedded broker), the committed offsets of the
processor and the sink, and the audit log's manifests and ids; the ledgers
themselves are computed in :mod:`.ledger`. Read-only: it joins no group and
commits nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from preflog.errors import PreflogError
from preflog.kafka.config import admin_config
from preflog.kafka.offsets import committed_offsets
from preflog.kafka.reader import OFFSET_BEGINNING, RangeReader, ReadError, Span
from preflog.schemas.codec import Codec
from preflog.schemas.tables import OUTPUTS, TABLES
from preflog.settings import Settings

from .incarnation import topic_ids
from .ledger import InputRecord, Ledger, Outcomes, input_ledger, output_ledger
from .manifest import MANIFEST_DIR, Manifest
from .parquet import read_ids
from .storage import Storage

__all__ = ["Reconciliation", "read_all", "reconcile"]

Progress = Callable[[str], None]


@dataclass
class Reconciliation:
    """Both sides' ledgers; ``ok`` when nothing is unaccounted."""

    outputs: list[Ledger] = field(default_factory=list)
    inputs: list[Ledger] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    undecided: int = 0  #: of the problems, those that only say a record is still pending or open (--final)

    @property
    def only_undecided(self) -> bool:
        """Whether every problem is a record not decided yet (nothing missing, nothing contradictory)."""
        found = len(self.problems) + sum(len(led.problems) for led in self.outputs + self.inputs)
        return found > 0 and found == self.undecided

    @property
    def ok(self) -> bool:
        return not self.problems and all(led.ok for led in self.outputs + self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "outputs": [led.to_dict() for led in self.outputs],
            "inputs": [led.to_dict() for led in self.inputs],
        }


def read_all(
    config: dict[str, Any], tps: list[tuple[str, int]], timeout: float = 120.0
) -> dict[tuple[str, int], list[Message]]:
    """Every record of each partition, from its first to its end as the fetch path reports it.

    A partition that gets records after its end-of-partition is read on to its next end,
    so the reading stops once every partition has ended with nothing after it.

    Raises:
        PreflogError: Not read to the end within ``timeout`` s, or a fatal client error.
    """
    out: dict[tuple[str, int], list[Message]] = {tp: [] for tp in tps}
    if not tps:
        return out
    spans = [Span(t, p, OFFSET_BEGINNING) for t, p in tps]
    try:
        with RangeReader(
            config, "preflog-reconcile", spans, timeout=timeout, strict=False, settle=True, batch=1000
        ) as r:
            for msg in r.records():
                out[(msg.topic() or "", msg.partition() or 0)].append(msg)
    except ReadError as exc:
        raise PreflogError(f"reading every partition to its end: {exc}") from exc
    return out


def _offset(at: dict[str, Any]) -> tuple[str, int, int]:
    return (at["topic"], int(at["partition"]), int(at["offset"]))


def _current(manifests: list[Manifest], topic_id: str) -> list[Manifest]:
    """The manifests of the topic's current incarnation (see :mod:`.incarnation`)."""
    if not manifests:
        return []
    if topic_id and any(m.topic_id for m in manifests):
        return [m for m in manifests if m.topic_id == topic_id]
    newest = max(m.incarnation for m in manifests)
    return [m for m in manifests if m.incarnation == newest]


def _stored_ids(storage: Storage, table: str, manifests: Iterable[Manifest]) -> set[str]:
    column = TABLES[table].id_column
    ids: set[str] = set()
    for path in sorted({m.file for m in manifests if m.file}):
        try:
            data = storage.read(path)
        except FileNotFoundError:
            continue  # reported: its range's ids are missing
        ids.update(read_ids(data, column))
    return ids


def reconcile(
    settings: Settings, storage: Storage, progress: Progress | None = None, final: bool = False
) -> Reconciliation:
    """Account for every record of preflog's topics (see :mod:`.ledger` for the rules).

    ``final``: the traffic has stopped and the pipeline has drained, so a record still pending or open is a
    problem too (a processor or sink that stopped making progress, not one that is behind).
    """
    say = progress or (lambda _: None)
    config = admin_config(settings.kafka.client_config(), quiet=True)
    admin = AdminClient(config)
    codec: Codec = settings.make_codec()
    t = settings.topics
    result = Reconciliation()
    metadata = admin.list_topics(timeout=10).topics
    roles = {"inference": t.inference, "feedback": t.feedback} | {o.role: getattr(t, o.role) for o in OUTPUTS}
    absent = [name for name in roles.values() if name not in metadata]
    if absent:
        raise PreflogError(f"topic(s) {', '.join(absent)} do not exist on {settings.kafka.bootstrap_servers}")
    tps = [(name, p) for name in roles.values() for p in sorted(metadata[name].partitions)]
    say(f"reading {len(tps)} partitions to their end")
    records = read_all(config, tps)
    ids = topic_ids(admin, roles.values())
    outcomes = Outcomes()
    sink_committed = committed_offsets(admin, settings.sink.group_id)
    for role, record_type in ((o.role, o.record) for o in OUTPUTS):
        topic = roles[role]
        say(f"checking {topic} against the audit log")
        every = [
            Manifest.from_json(storage.read(p)) for p in storage.list(f"{MANIFEST_DIR}/{role}") if p.endswith(".json")
        ]
        stored = _stored_ids(storage, role, every)
        for partition in sorted(metadata[topic].partitions):
            by_offset: dict[int, str | None] = {}
            for msg in records[(topic, partition)]:
                try:
                    value = codec.decode(msg.value() or b"", record_type, topic)
                except PreflogError as exc:
                    result.problems.append(f"{topic}[{partition}] offset {msg.offset()}: {exc}")
                    continue
                by_offset[msg.offset() or 0] = value.get(TABLES[role].id_column) or None
                _add_outcome(outcomes, role, value)
            mine = _current([m for m in every if (m.topic, m.partition) == (topic, partition)], ids.get(topic, ""))
            result.outputs.append(
                output_ledger(topic, partition, by_offset, mine, sink_committed.get((topic, partition)), stored)
            )
    say("accounting for every input record")
    inputs: list[InputRecord] = []
    for role, record_type in (("inference", "InferenceEvent"), ("feedback", "FeedbackEvent")):
        topic = roles[role]
        for partition in sorted(metadata[topic].partitions):
            for msg in records[(topic, partition)]:
                inputs.append(_input(codec, msg, role, record_type))
    p = settings.processor
    committed = committed_offsets(admin, p.app_id)
    horizon = int((p.window_s + p.grace_s) * 1000)
    result.inputs = input_ledger(inputs, outcomes, committed, horizon)
    if final:
        for led in result.inputs + result.outputs:
            for state in ("pending", "open"):
                if led.counts[state]:
                    led.problems.append(f"{led.counts[state]} record(s) {state} (--final: all should be decided)")
                    result.undecided += 1
    return result


def _add_outcome(outcomes: Outcomes, role: str, value: dict[str, Any]) -> None:
    """What one output record says about the input records it came from."""
    rid = str(value.get("request_id") or "")
    if role in ("pairs", "unpaired"):
        outcomes.add_joined(_offset(value["inference_offset"]), rid)
        outcomes.add_joined(_offset(value["feedback_offset"]), rid)
        return
    at = _offset(value["source_offset"])
    if role == "unmatched":
        stream_ms = int(value["stream_time"].timestamp() * 1000)
        outcomes.add_unmatched(at, str(value["reason"]), str(value.get("unmatched_id") or ""), rid, stream_ms)
    else:
        outcomes.add_dead(at, str(value["error_class"]), str(value.get("dead_letter_id") or ""))
    if value.get("inference_offset"):
        outcomes.add_joined(_offset(value["inference_offset"]), rid)  # judged, though no pair came of it


def _input(codec: Codec, msg: Message, role: str, record_type: str) -> InputRecord:
    topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
    value = msg.value() or b""
    try:
        record = codec.decode(value, record_type, topic)
        event_ms = int(record["event_time"].timestamp() * 1000)
    except (PreflogError, KeyError, AttributeError, ValueError, OverflowError):
        return InputRecord(topic, partition, offset, None)
    digest = hashlib.sha256(value).hexdigest()
    return InputRecord(
        topic,
        partition,
        offset,
        role,
        str(record["request_id"]),
        str(record.get("feedback_id") or ""),
        event_ms,
        digest,
    )
