"""``preflog reconcile``: account for every record, from the input topics through the output topics to the files.

It reads every partition of the six topics to its end (the fetch path, not
ListOffsets: see notes on the embedded broker), the committed offsets of the
processor and the sink, and the audit log's manifests and ids; the ledgers
themselves are computed in :mod:`.ledger`. Read-only: it joins no group and
commits nothing.

Memory: each record is decoded as it arrives and only what the ledgers need is
kept (:class:`Facts`: an output's offset and id and what it says of its inputs,
an input's :class:`~.ledger.InputRecord`), never its value; of the audit log,
one file's id column at a time and the ids that the topics also hold. So it
grows with what the topics retain (a few hundred bytes a record), not with the
log.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from preflog.errors import PreflogError
from preflog.kafka.config import admin_config
from preflog.kafka.offsets import committed_offsets
from preflog.kafka.reader import OFFSET_BEGINNING, RangeReader, ReadError, Span
from preflog.schemas.codec import Codec
from preflog.schemas.tables import INPUTS, OUTPUTS, TABLES, TOPIC_RECORDS
from preflog.settings import Settings

from .incarnation import topic_ids
from .ledger import InputRecord, Ledger, Outcomes, input_ledger, output_ledger
from .manifest import MANIFEST_DIR, Manifest
from .storage import Storage

__all__ = ["Facts", "Reconciliation", "each_record", "reconcile"]

Progress = Callable[[str], None]
_INPUT_ROLES = tuple(i.role for i in INPUTS)  # inference, then feedback


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


def each_record(config: dict[str, Any], tps: list[tuple[str, int]], idle: float = 120.0) -> Iterator[Message]:
    """Every record of each partition, from its first to its end as the fetch path reports it, one at a time.

    A partition that gets records after its end-of-partition is read on to its next end,
    so the reading stops once every partition has ended with nothing after it.

    Raises:
        PreflogError: Nothing came from the broker for ``idle`` s while partitions are unread, or a fatal client
            error.
    """
    if not tps:
        return
    spans = [Span(t, p, OFFSET_BEGINNING) for t, p in tps]
    try:
        with RangeReader(
            config, "preflog-reconcile", spans, timeout=None, idle=idle, strict=False, settle=True, batch=1000
        ) as r:
            yield from r.records()
    except ReadError as exc:
        raise PreflogError(f"reading every partition to its end: {exc}") from exc


@dataclass
class Facts:
    """What reconcile keeps of the records it read, per (topic, partition), in offset order; no record's value."""

    ids: dict[tuple[str, int], dict[int, str | None]] = field(default_factory=dict)  #: outputs: offset -> id
    problems: dict[tuple[str, int], list[str]] = field(default_factory=dict)  #: outputs that do not decode
    inputs: dict[tuple[str, int], list[InputRecord]] = field(default_factory=dict)
    outcomes: Outcomes = field(default_factory=Outcomes)

    @classmethod
    def read(cls, records: Iterable[Message], codec: Codec, roles: dict[str, str]) -> Facts:
        """Decode each record as it comes and keep its facts (``roles``: role -> topic, inputs and outputs)."""
        facts = cls()
        role_of = {topic: role for role, topic in roles.items()}
        for msg in records:
            topic = sys.intern(msg.topic() or "")  # one string per topic, not per record
            role = role_of.get(topic)
            if role in _INPUT_ROLES:
                record = _input(codec, msg, topic, role)
                facts.inputs.setdefault((topic, record.partition), []).append(record)
            elif role is not None:
                facts._output(codec, msg, topic, role)
        return facts

    def _output(self, codec: Codec, msg: Message, topic: str, role: str) -> None:
        partition, offset = msg.partition() or 0, msg.offset() or 0
        ids = self.ids.setdefault((topic, partition), {})
        try:
            value = codec.decode(msg.value() or b"", TOPIC_RECORDS[role], topic)
        except PreflogError as exc:
            self.problems.setdefault((topic, partition), []).append(f"{topic}[{partition}] offset {offset}: {exc}")
            return
        ids[offset] = value.get(TABLES[role].id_column) or None
        _add_outcome(self.outcomes, role, value)


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


def _stored_ids(storage: Storage, table: str, manifests: Iterable[Manifest], wanted: set[str]) -> set[str]:
    """The ids of ``wanted`` that the table's files hold, read one file's id column at a time."""
    column = TABLES[table].id_column
    found: set[str] = set()
    value_set = pa.array(sorted(i for i in wanted if i), pa.string())  # an empty id is no id
    if not len(value_set):
        return found
    for path in sorted({m.file for m in manifests if m.file}):
        try:
            with storage.fs.open(storage.path(path), "rb") as f:
                parquet = pq.ParquetFile(f)
                if column not in parquet.schema_arrow.names:
                    continue
                ids = parquet.read(columns=[column]).column(column)
        except FileNotFoundError:
            continue  # reported: its range's ids are missing
        found.update(ids.filter(pc.is_in(ids, value_set=value_set)).to_pylist())
    return found


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
    facts = Facts.read(each_record(config, tps), codec, roles)
    ids = topic_ids(admin, roles.values())
    sink_committed = committed_offsets(admin, settings.sink.group_id)
    for role in (o.role for o in OUTPUTS):
        topic = roles[role]
        say(f"checking {topic} against the audit log")
        every = [
            Manifest.from_json(storage.read(p)) for p in storage.list(f"{MANIFEST_DIR}/{role}") if p.endswith(".json")
        ]
        partitions = sorted(metadata[topic].partitions)
        held = {rid for p in partitions for rid in facts.ids.get((topic, p), {}).values() if rid is not None}
        stored = _stored_ids(storage, role, every, held)
        for partition in partitions:
            result.problems += facts.problems.get((topic, partition), [])
            by_offset = facts.ids.get((topic, partition), {})
            mine = _current([m for m in every if (m.topic, m.partition) == (topic, partition)], ids.get(topic, ""))
            result.outputs.append(
                output_ledger(topic, partition, by_offset, mine, sink_committed.get((topic, partition)), stored)
            )
    say("accounting for every input record")
    inputs: list[InputRecord] = []
    for role in _INPUT_ROLES:
        topic = roles[role]
        for partition in sorted(metadata[topic].partitions):
            inputs += facts.inputs.get((topic, partition), [])
    p = settings.processor
    committed = committed_offsets(admin, p.app_id)
    horizon = int((p.window_s + p.grace_s) * 1000)
    result.inputs = input_ledger(inputs, facts.outcomes, committed, horizon)
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
    if role == "turns":  # a turn kept for later turns' histories: its inference's outcome comes on its own
        return
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


def _input(codec: Codec, msg: Message, topic: str, role: str) -> InputRecord:
    partition, offset = msg.partition() or 0, msg.offset() or 0
    value = msg.value() or b""
    try:
        record = codec.decode(value, TOPIC_RECORDS[role], topic)
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
