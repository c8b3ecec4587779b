"""Producing inference and feedback events: the SDK, file loading, synthetic traffic."""

from __future__ import annotations

from .client import Delivered, PreflogProducer
from .exceptions import BackpressureError, DeliveryError, ProducerClosedError, RecordTooLargeError

__all__ = [
    "BackpressureError",
    "Delivered",
    "DeliveryError",
    "PreflogProducer",
    "ProducerClosedError",
    "RecordTooLargeError",
]
