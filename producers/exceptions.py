"""Errors a producing service sees."""

from __future__ import annotations

from preflog.errors import PreflogError

__all__ = ["BackpressureError", "DeliveryError", "ProducerClosedError"]


class BackpressureError(PreflogError):
    """The local send queue stayed full for longer than ``max_block_ms``; nothing was sent."""


class DeliveryError(PreflogError):
    """The broker did not acknowledge a record (set on the record's future)."""


class ProducerClosedError(PreflogError):
    """log_* was called after close()."""
