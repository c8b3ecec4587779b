"""Outputs are encoded inside the join, one by one, before anything is sent.

An output that cannot be encoded, or whose encoded size is over
``max_output_bytes``, becomes a DeadLetter of the input record that made it
(error class ``OutputNotEncodable`` or ``OutputTooLarge``), so a record can
never make the worker fail to send its batch. A dead letter keeps the input's
key and value; when they would make the dead letter itself too large they are
truncated to a prefix, the reason says so, and the source offset in the dead
letter is where the whole record stays.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from preflog.schemas.codec import Codec
from preflog.schemas.exceptions import ValidationError
from preflog.schemas.tables import TABLES

from .records import dead_letter

__all__ = ["ENCODE_ERRORS", "Emit", "OutputEncoder", "Source"]

Record = dict[str, Any]
#: what encoding a record can raise because of its content (fastavro raises OverflowError for a too-large long)
ENCODE_ERRORS = (ValidationError, ValueError, TypeError, OverflowError, KeyError, AttributeError, struct.error)
#: room left for the reason's truncation note and varint lengths when a dead letter is cut down
_SLACK = 512
#: the longest reason a dead letter carries (a reason may quote the record: a huge key, say)
MAX_REASON_CHARS = 4000


def _short(text: str) -> str:
    text = text.encode("utf-8", "backslashreplace").decode()
    if len(text) <= MAX_REASON_CHARS:
        return text
    return f"{text[:MAX_REASON_CHARS]}... ({len(text) - MAX_REASON_CHARS} more characters)"


class Emit(NamedTuple):
    """One output record: ``role`` is pairs, unpaired, unmatched or dead_letter; ``value`` its encoded bytes."""

    role: str
    key: bytes | None
    record: Record
    value: bytes = b""


class Source(NamedTuple):
    """The input record an output comes from: what a dead letter keeps."""

    key: bytes | None
    value: bytes | None
    at: Record
    inference_at: Record | None = None  # the inference it was joined with, if any


class OutputEncoder:
    """Encodes outputs for their topics; too large or unencodable ones become dead letters."""

    def __init__(self, codec: Codec, topics: Mapping[str, str], max_bytes: int, wall_ms: Callable[[], int]) -> None:
        self.codec = codec
        self.topics = topics
        self.max_bytes = max_bytes
        self.wall_ms = wall_ms

    def _encode(self, role: str, record: Record) -> bytes:
        return self.codec.encode(TABLES[role].record, record, self.topics.get(role, ""))

    def emit(self, role: str, key: bytes | None, record: Record, source: Source, value: bytes | None = None) -> Emit:
        """``record`` encoded (``value``: its encoding, if known), or the dead letter of ``source`` saying why not."""
        name = TABLES[role].record
        try:
            value = self._encode(role, record) if value is None else value
        except ENCODE_ERRORS as exc:
            reason = f"the {name} made from this record cannot be encoded: {type(exc).__name__}: {exc}"
            return self.dead(reason, "OutputNotEncodable", "encode", source)
        size = len(value) + len(key or b"")
        if size > self.max_bytes:
            reason = (
                f"the {name} made from this record is {size} bytes encoded (key and value), over "
                f"max_output_bytes={self.max_bytes} (PREFLOG_PROCESSOR__MAX_OUTPUT_BYTES)"
            )
            return self.dead(reason, "OutputTooLarge", "encode", source)
        return Emit(role, key, record, value)

    def dead(self, reason: str, error_class: str, stage: str, source: Source) -> Emit:
        """A dead letter of ``source``; its key and value are cut to a prefix if it would be over the limit.

        A record without a key gets its dead letter's id as the Kafka key: re-emitted after a restart, the
        dead letter lands on the same partition, where the sink stores its id once (a null key would let the
        producer pick any partition, and the sink dedupes within a partition).
        """
        emit = self._dead(reason, error_class, stage, source)
        if emit.key is None:
            return Emit(emit.role, emit.record["dead_letter_id"].encode(), emit.record, emit.value)
        return emit

    def _dead(self, reason: str, error_class: str, stage: str, source: Source) -> Emit:
        failed_at = datetime.fromtimestamp(self.wall_ms() / 1000, tz=timezone.utc)
        reason = _short(reason)
        record = dead_letter(
            reason, error_class, stage, source.key, source.value, source.at, failed_at, source.inference_at
        )
        try:
            value = self._encode("dead_letter", record)
        except ENCODE_ERRORS as exc:  # not seen: every field comes from Kafka or from preflog; keep what can be
            record.update(key=None, value=None, reason=_short(f"{reason}; key and value not kept: {exc}"))
            return Emit("dead_letter", None, record, self._encode("dead_letter", record))
        key = source.key
        if len(value) + len(key or b"") <= self.max_bytes:
            return Emit("dead_letter", key, record, value)
        key_in, value_in = source.key or b"", source.value or b""
        bare = {**record, "key": b"" if source.key is not None else None, "value": b""}
        room = max(self.max_bytes - len(self._encode("dead_letter", bare)) - _SLACK, 0)
        keep_key = min(len(key_in), room // 4)  # the key is sent twice: as the Kafka key and inside the record
        keep_value = min(len(value_in), room - 2 * keep_key)
        at = source.at
        record["reason"] = (
            f"{reason}; the dead letter keeps the first {keep_value} of the value's {len(value_in)} bytes and the "
            f"first {keep_key} of the key's {len(key_in)} bytes (truncated): the whole record is at "
            f"{at['topic']}[{at['partition']}] offset {at['offset']}"
        )
        record["value"] = value_in[:keep_value] if source.value is not None else None
        record["key"] = key_in[:keep_key] if source.key is not None else None
        key = record["key"]
        return Emit("dead_letter", key, record, self._encode("dead_letter", record))
