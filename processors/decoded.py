"""Decoded input records kept beside the join state, so the join does not decode the same bytes again.

The join state keeps inputs as their wire bytes (:mod:`preflog.processors.entry`).
:class:`DecodedRecords` remembers, per key (an inference's request_id, a
waiting feedback's feedback_id), those bytes with the record the codec
decoded from them (and where its fields are, for the outputs' encoding). A
lookup gives the remembered record only for the same bytes, else it decodes
them as the join always did: a restarted worker, or one past the bound, only
decodes again. The oldest are forgotten first.
"""

from __future__ import annotations

from typing import Any

from preflog.schemas.codec import Codec
from preflog.schemas.fast_reader import Marks

from .entry import Stored

__all__ = ["KEPT", "DecodedInferences", "DecodedRecords"]

Record = dict[str, Any]
#: decoded records kept per kind: a decoded inference takes about 6.5 kB, so 4,096 are about 27 MB
#: (16,384 were about 107 MB of the worker's RSS, and the join was no faster with them)
KEPT = 4_096


class DecodedRecords:
    """key -> (value, decoded record, marks) of one record type, at most ``limit`` of them.

    Args:
        codec: decodes a record that is not remembered.
        record_type: InferenceEvent or FeedbackEvent.
        limit: how many decoded records to keep.
    """

    def __init__(self, codec: Codec, record_type: str = "InferenceEvent", limit: int = KEPT) -> None:
        self.codec = codec
        self.record_type = record_type
        self.limit = limit
        self._kept: dict[str, tuple[bytes, Record, Marks | None]] = {}
        self._decode_marked = getattr(codec, "decode_marked", None)

    def keep(self, key: str, value: bytes, record: Record, marks: Marks | None) -> None:
        """Remember ``record``, decoded from ``value`` (never changed afterwards: outputs share its parts)."""
        kept = self._kept
        kept.pop(key, None)
        if len(kept) >= self.limit:
            del kept[next(iter(kept))]
        kept[key] = (value, record, marks)

    def forget(self, key: str) -> None:
        """Drop what is remembered for ``key``."""
        self._kept.pop(key, None)

    def get(self, key: str, stored: Stored) -> tuple[Record, Marks | None]:
        """The record ``stored`` holds, decoded, with its marks when known (remembered under ``key``)."""
        found = self._kept.get(key)
        if found is not None and (found[0] is stored.value or found[0] == stored.value):
            return found[1], found[2]
        if self._decode_marked is None:
            return stored.decode(self.codec, self.record_type), None
        record, marks = self._decode_marked(stored.value, self.record_type, stored.topic)
        self.keep(key, stored.value, record, marks)
        return record, marks

    def take(self, key: str, stored: Stored) -> tuple[Record, Marks | None]:
        """As :meth:`get`, and forgotten: a record used once (a waiting feedback, at its join or expiry)."""
        found = self._kept.pop(key, None)
        if found is not None and (found[0] is stored.value or found[0] == stored.value):
            return found[1], found[2]
        if self._decode_marked is None:
            return stored.decode(self.codec, self.record_type), None
        record, marks = self._decode_marked(stored.value, self.record_type, stored.topic)
        return record, marks


class DecodedInferences(DecodedRecords):
    """request_id -> decoded inference (:class:`DecodedRecords` of InferenceEvent)."""

    def __init__(self, codec: Codec, limit: int = KEPT) -> None:
        super().__init__(codec, "InferenceEvent", limit)
