"""Decoded inferences kept beside the join state, so a feedback does not decode its inference's bytes again.

The join state keeps an inference as its wire bytes (:mod:`preflog.processors.entry`);
:class:`DecodedInferences` remembers, per request_id, those bytes with the
record the codec decoded from them (and where its fields are, for the outputs'
encoding). A lookup gives the remembered record only for the same bytes, else
it decodes them as the join always did: a restarted worker, or one past the
bound, only decodes again. The oldest are forgotten first.
"""

from __future__ import annotations

from typing import Any

from preflog.schemas.codec import Codec
from preflog.schemas.fast_reader import Marks

from .entry import Stored

__all__ = ["DecodedInferences"]

Record = dict[str, Any]


class DecodedInferences:
    """request_id -> (value, decoded record, marks), at most ``limit`` of them.

    Args:
        codec: decodes an inference that is not remembered.
        limit: how many decoded inferences to keep.
    """

    def __init__(self, codec: Codec, limit: int = 16_384) -> None:
        self.codec = codec
        self.limit = limit
        self._kept: dict[str, tuple[bytes, Record, Marks | None]] = {}

    def keep(self, rid: str, value: bytes, record: Record, marks: Marks | None) -> None:
        """Remember ``record``, decoded from ``value`` (never changed afterwards: outputs share its parts)."""
        kept = self._kept
        kept.pop(rid, None)
        if len(kept) >= self.limit:
            del kept[next(iter(kept))]
        kept[rid] = (value, record, marks)

    def forget(self, rid: str) -> None:
        """Drop what is remembered for ``rid``."""
        self._kept.pop(rid, None)

    def get(self, rid: str, stored: Stored) -> tuple[Record, Marks | None]:
        """The inference ``stored`` holds, decoded, with its marks when known."""
        found = self._kept.get(rid)
        if found is not None and (found[0] is stored.value or found[0] == stored.value):
            return found[1], found[2]
        decode_marked = getattr(self.codec, "decode_marked", None)
        if decode_marked is None:
            return stored.decode(self.codec, "InferenceEvent"), None
        record, marks = decode_marked(stored.value, "InferenceEvent", stored.topic)
        self.keep(rid, stored.value, record, marks)
        return record, marks
