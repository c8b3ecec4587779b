"""What reconcile keeps of the records it reads: per-partition facts in offset order, never a record's value."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.ledger import InputRecord
from preflog.sinks.manifest import Manifest
from preflog.sinks.parquet import encode
from preflog.sinks.reconcile import Facts, _stored_ids
from preflog.sinks.storage import Storage

from ..samples import OFFSET, all_samples

CODEC = SingleObjectCodec()
SAMPLES = all_samples()
ROLES = {
    "inference": "inf",
    "feedback": "fb",
    "pairs": "pairs",
    "unpaired": "unp",
    "unmatched": "um",
    "dead_letter": "dl",
    "turns": "turns",
}


class FakeMessage:
    """The part of a confluent-kafka Message reconcile reads."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._where, self._value = (topic, partition, offset), value

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]

    def value(self) -> bytes:
        return self._value


def _messages() -> list[FakeMessage]:
    inference = CODEC.encode("InferenceEvent", SAMPLES["InferenceEvent"])
    feedback = CODEC.encode("FeedbackEvent", SAMPLES["FeedbackEvent"])
    pair = {**SAMPLES["PreferencePair"], "pair_id": "p-1"}
    return [
        FakeMessage("inf", 1, 40, inference),
        FakeMessage("pairs", 0, 7, CODEC.encode("PreferencePair", pair)),
        FakeMessage("fb", 1, 6, b"not a record"),
        FakeMessage("pairs", 0, 8, b"\x00\x01"),
        FakeMessage("inf", 1, 41, inference),  # the same bytes again: a duplicate, decided by the ledger
        FakeMessage("fb", 1, 7, feedback),
        FakeMessage("pairs", 1, 3, CODEC.encode("PreferencePair", {**pair, "pair_id": "p-2"})),
        FakeMessage("turns", 0, 0, CODEC.encode("ConversationTurn", SAMPLES["ConversationTurn"])),
    ]


def test_facts_are_kept_per_partition_in_offset_order_without_the_records() -> None:
    messages = _messages()
    alive = [weakref.ref(m) for m in messages]
    facts = Facts.read(iter(messages), CODEC, ROLES)  # type: ignore[arg-type]
    del messages
    gc.collect()
    assert all(ref() is None for ref in alive)  # no message (and so no value) outlives the read
    turn = SAMPLES["ConversationTurn"]["request_id"]  # stored by its request_id; no outcome of any input
    assert facts.ids == {("pairs", 0): {7: "p-1"}, ("pairs", 1): {3: "p-2"}, ("turns", 0): {0: turn}}
    ((where, (problem,)),) = facts.problems.items()
    assert where == ("pairs", 0) and problem.startswith("pairs[0] offset 8: ")
    inference, again = facts.inputs[("inf", 1)]
    rid = SAMPLES["InferenceEvent"]["request_id"]
    assert (inference.offset, again.offset, inference.kind, inference.request_id) == (40, 41, "inference", rid)
    assert inference.digest == again.digest and len(inference.digest) == 64
    bad, feedback = facts.inputs[("fb", 1)]
    assert bad == InputRecord("fb", 1, 6, None)
    assert (feedback.kind, feedback.feedback_id) == ("feedback", SAMPLES["FeedbackEvent"]["feedback_id"])
    # the pair names its inference and feedback offsets: both are joined, under the pair's request_id
    topic, partition, offset = str(OFFSET["topic"]), int(str(OFFSET["partition"])), int(str(OFFSET["offset"]))
    assert facts.outcomes.joined_at((topic, partition, offset)) == (SAMPLES["PreferencePair"]["request_id"],)
    assert facts.outcomes.joined_at((topic, partition, offset + 1)) == ()


def test_stored_ids_are_only_those_the_topic_holds(tmp_path: Path) -> None:
    """Of the audit log only the ids the topic also holds are kept: the log grows, the topic is retained."""
    storage = Storage(f"file://{tmp_path}")
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    manifests = []
    for n, ids in enumerate((["a", "b", ""], ["c", "d"], ["e"])):
        relative = f"pairs/dt=2026-11-01/f{n}.parquet"
        storage.put(relative, encode(to_table([{**SAMPLES["PreferencePair"], "pair_id": i} for i in ids], schema)))
        manifests.append(Manifest(relative, "pairs", "t", 0, n, n, len(ids), 0, "", "", "", ""))
    manifests.append(Manifest("pairs/dt=2026-11-01/gone.parquet", "pairs", "t", 0, 9, 9, 1, 0, "", "", "", ""))
    assert _stored_ids(storage, "pairs", manifests, {"b", "d", "x", ""}) == {"b", "d"}
    assert _stored_ids(storage, "pairs", manifests, set()) == set()
