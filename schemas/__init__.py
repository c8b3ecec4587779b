"""The event contract: versioned Avro schemas, their codecs and validation."""

from __future__ import annotations

from .codec import Codec, ConfluentCodec, SingleObjectCodec
from .events import feedback_record, inference_record
from .exceptions import DecodeError, SchemaError, ValidationError
from .registry import SchemaStore, default_store
from .tables import RECORD_TYPES

__all__ = [
    "RECORD_TYPES",
    "Codec",
    "ConfluentCodec",
    "DecodeError",
    "SchemaError",
    "SchemaStore",
    "SingleObjectCodec",
    "ValidationError",
    "default_store",
    "feedback_record",
    "inference_record",
]
