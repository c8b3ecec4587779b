"""The event contract: versioned Avro schemas, their codecs and validation, and the table catalogue.

Names are loaded on first use, so ``preflog.schemas.tables`` (which the
audit-log reader needs) does not pull in fastavro.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codec import Codec, ConfluentCodec, SingleObjectCodec
    from .events import feedback_record, inference_record
    from .exceptions import DecodeError, SchemaError, ValidationError
    from .registry import SchemaStore, default_store
    from .tables import RECORD_TYPES

#: public name -> the module of this package that defines it
_WHERE = {
    "Codec": "codec",
    "ConfluentCodec": "codec",
    "SingleObjectCodec": "codec",
    "feedback_record": "events",
    "inference_record": "events",
    "DecodeError": "exceptions",
    "SchemaError": "exceptions",
    "ValidationError": "exceptions",
    "SchemaStore": "registry",
    "default_store": "registry",
    "RECORD_TYPES": "tables",
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
