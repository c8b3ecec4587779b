"""Is the topic the writer resumes the one its files came from?

Offsets start again from 0 when a topic is deleted and recreated, when a
cluster is migrated, or when the embedded broker (which keeps its log in
memory) starts empty. A writer that resumed "after the highest offset in the
files" would then skip every new record below that offset while the log
looked complete. So before resuming, the writer identifies the topic's
incarnation:

1. by the broker's topic id (Kafka 2.8+, and the embedded broker), recorded
   in every manifest: another id is another incarnation;
2. where either side has no id, by the record at the last offset the files
   cover: it must exist and, where the manifest recorded it, be the same
   record (timestamp and value digest). A partition that ends below it, or
   holds another record there, is another incarnation; when the record
   cannot be read at all, the writer stops rather than guess
   (:class:`IncarnationUnknownError`).

A new incarnation gets the next number and is read from its beginning into
files whose names carry that number; the old files stay as they are.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from preflog.errors import PreflogError
from preflog.kafka.config import consumer_config

from .manifest import Manifest

__all__ = ["END", "Decision", "IncarnationUnknownError", "decide", "probe", "record_identity", "topic_ids"]

log = logging.getLogger(__name__)


class IncarnationUnknownError(PreflogError):
    """Whether a topic is the one the files came from could not be learned; the writer does not guess."""


END = "<end of partition>"
_NO_ID = {"", "AAAAAAAAAAAAAAAAAAAAAA", "00000000-0000-0000-0000-000000000000"}


def record_identity(msg: Message) -> str:
    """``<timestamp ms>:<sha256 of the value>``: tells one record from another at the same offset."""
    return f"{msg.timestamp()[1]}:{hashlib.sha256(msg.value() or b'').hexdigest()}"


def topic_ids(admin: AdminClient, topics: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
    """The broker's id of each topic ('' where the broker has none or does not answer)."""
    out = dict.fromkeys(topics, "")
    try:
        futures = admin.describe_topics(TopicCollection(list(out)), request_timeout=timeout)
        for name, future in futures.items():
            topic_id = str(future.result().topic_id or "")
            out[name] = "" if topic_id in _NO_ID else topic_id
    except Exception as exc:  # an old broker, or no DescribeTopics: fall back to probing records
        log.warning("could not read topic ids (%s); telling topic incarnations apart by their records", exc)
    return out


def probe(config: dict[str, Any], topic: str, partition: int, offset: int, timeout: float = 10.0) -> str | None:
    """The identity of the record at ``offset``.

    Returns:
        The identity; :data:`END` if the partition ends at or before ``offset``; None if neither could be
        learned within ``timeout``.
    """
    consumer = Consumer(consumer_config(config, "preflog-sink-probe", offset_reset="error", eof=True))
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is None:
                if (msg.offset() or 0) == offset:
                    return record_identity(msg)
                if (msg.offset() or 0) > offset:
                    return END  # compacted or a transaction marker: the record is not there
                continue
            if error.code() == KafkaError._PARTITION_EOF and (msg.offset() or 0) <= offset:
                return END
            if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                return END
        return None
    finally:
        consumer.close()


@dataclass(frozen=True)
class Decision:
    """Where a writer resumes: ``resume_after`` is the last offset already in files (-1: from the start)."""

    incarnation: int
    resume_after: int
    new: bool
    reason: str = ""


def decide(latest: Manifest | None, topic_id: str, probe_at: Callable[[int], str | None]) -> Decision:
    """Continue the files' newest incarnation, or start the next one.

    ``latest`` is the manifest with the highest offset of the newest incarnation
    in the files for this topic-partition (None: no files); ``topic_id`` is the
    broker's id of the topic now ('' if unknown); ``probe_at(offset)`` reads the
    identity of the record at an offset (see :func:`probe`).
    """
    if latest is None:
        return Decision(0, -1, False)
    where = f"{latest.topic}[{latest.partition}]"
    k, upto = latest.incarnation, latest.last_offset
    if latest.topic_id and topic_id:
        if latest.topic_id == topic_id:
            return Decision(k, upto, False)
        reason = f"{where} has topic id {topic_id}, the files up to offset {upto} came from topic id {latest.topic_id}"
        return Decision(k + 1, -1, True, reason)
    seen = probe_at(upto)
    if seen is None:
        raise IncarnationUnknownError(
            f"{where}: the record at offset {upto}, the last in the audit log's files, could not be read to check "
            "that the topic is the one the files came from; not resuming on a guess (is the broker answering?)"
        )
    if seen == END:
        reason = f"{where} ends at or before offset {upto}, the last offset in the files"
    elif latest.last_record and seen != latest.last_record:
        reason = f"{where} holds another record at offset {upto} than the one the files recorded"
    else:
        return Decision(k, upto, False)
    return Decision(k + 1, -1, True, reason)
