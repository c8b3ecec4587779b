"""Errors a producing service sees."""

from __future__ import annotations

from preflog.errors import PreflogError
from preflog.schemas.exceptions import ValidationError

__all__ = ["BackpressureError", "DeliveryError", "ProducerClosedError", "RecordTooLargeError"]


class BackpressureError(PreflogError):
    """The local send queue stayed full for longer than ``max_block_ms``; nothing was sent."""


class DeliveryError(PreflogError):
    """The broker did not acknowledge a record (set on the record's future), or the Kafka client refused it."""


class ProducerClosedError(PreflogError):
    """log_* was called after close()."""


class RecordTooLargeError(ValidationError):
    """A valid event encodes to more bytes than may be sent; nothing was sent.

    The limit is the smaller of the Kafka client's ``message.max.bytes`` (the
    key counts too) and the codec's ``max_record_bytes``, past which the
    processor's decoder would refuse the record. ``size`` and ``limit`` are
    in bytes; the message names the largest text fields.
    """

    def __init__(self, record_type: str, size: int, limit: int, setting: str, largest: str = "") -> None:
        self.size = size
        self.limit = limit
        problem = f"record: {size} bytes, over the limit of {limit} bytes ({setting})"
        super().__init__(record_type, [problem + (f"; the largest fields are {largest}" if largest else "")])
