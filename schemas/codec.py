"""Encode and decode records as framed Avro.

Two framings, chosen by settings:

* ``single-object`` (default): the Avro single-object encoding, ``C3 01``
  followed by the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
  schema, then the Avro body. The fingerprint is resolved against every
  version kept in ``schemas/avro``; no registry server is needed.
* ``confluent``: the Confluent wire format, ``00`` + 4-byte big-endian schema
  id from a Schema Registry, then the body. Subjects follow the
  TopicNameStrategy (``<topic>-value``).

Both decode to the newest schema version of the expected record type, and
decode strictly: bytes fastavro would accept but no Avro writer produces (an
``int`` beyond 32 bits, a varint beyond 64, a negative enum or union index,
invalid UTF-8, a forged length or count) and bodies over the size limits are
a :class:`~preflog.schemas.exceptions.DecodeError` naming the field, never a
record that looks valid. A decoded record can still break the contract's
rules (validate it with ``inference_record``/``feedback_record``).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from typing import Any, Protocol

import fastavro

from .exceptions import DecodeError, ValidationError
from .fast_reader import Marks, Reader, compile_reader
from .registry import SchemaStore, SchemaVersion, default_store, strip_uuid
from .shape import shape_problems
from .strict import BodyError, Checker, cached_checker

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_MAX_STRING_BYTES",
    "Codec",
    "ConfluentCodec",
    "SingleObjectCodec",
]

SOE_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class Codec(Protocol):
    """Turns records of a named type into framed bytes and back."""

    def encode(self, record_type: str, record: Mapping[str, Any], topic: str) -> bytes: ...

    def decode(self, data: bytes, record_type: str, topic: str) -> dict[str, Any]: ...


def _write_body(schema: SchemaVersion, record: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, schema.parsed, dict(record))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        problems = shape_problems(record, schema.reader) or [
            f"does not match schema {schema.name} v{schema.version}: {exc}"
        ]
        raise ValidationError(schema.name, problems) from exc
    return buf.getvalue()


#: a record body larger than this is refused before decoding: Kafka's default ``message.max.bytes``
#: is about 1 MB, so no broker with default settings carries a bigger event
DEFAULT_MAX_RECORD_BYTES = 1 << 20
#: one string or bytes value may fill the whole record (a long completion is legitimate)
DEFAULT_MAX_STRING_BYTES = DEFAULT_MAX_RECORD_BYTES
#: entries in one array or map value: far above any real candidate list, ranking or metadata map,
#: low enough that a forged count cannot make the reader build millions of objects
DEFAULT_MAX_ITEMS = 10_000


class _StrictBodies:
    """Decodes Avro bodies strictly: a checked pre-pass (``schemas/strict.py``), then fastavro.

    Args:
        max_record_bytes: a longer body is a DecodeError before any parsing.
        max_string_bytes: the longest string or bytes value accepted.
        max_items: the most entries accepted in one array or map value.
    """

    def __init__(
        self,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        for name, value in (
            ("max_record_bytes", max_record_bytes),
            ("max_string_bytes", max_string_bytes),
            ("max_items", max_items),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_record_bytes = max_record_bytes
        self.max_string_bytes = max_string_bytes
        self.max_items = max_items
        self._checkers: dict[tuple[Any, bool], tuple[Any, Checker]] = {}
        self._fast: dict[int, tuple[Any, Reader | None]] = {}

    def _fast_reader(self, writer: Any, reader: SchemaVersion) -> Reader | None:
        """The fast reader when the writer schema is the reader's (:mod:`.fast_reader`), else None."""
        found = self._fast.get(id(writer))
        if found is None or found[0] is not writer:
            fast = None
            if writer is reader.reader:
                try:
                    fast = compile_reader(writer)
                except (ValueError, RecursionError):
                    fast = None
            found = self._fast[id(writer)] = (writer, fast)
        return found[1]

    def _read_marked(
        self, body: bytes, key: Any, writer: Any, reader: SchemaVersion, what: str
    ) -> tuple[dict[str, Any], Marks | None]:
        """The record, and where its fields are in ``body`` when the fast path decoded it (else None)."""
        name = reader.name
        if len(body) > self.max_record_bytes:
            raise DecodeError(
                f"{what}: {len(body)}-byte {name} body is larger than the limit of {self.max_record_bytes} bytes"
            )
        fast = self._fast_reader(writer, reader)
        if fast is not None:
            try:
                return fast(body, self.max_string_bytes, self.max_items)
            except Exception:  # Fallback, or a body cut short: the checked path decides, with its messages
                pass
        self._check(body, key, writer, name, what, thorough=False)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(body), writer, reader.reader)
        except Exception as exc:  # fastavro raises many types; the thorough pre-pass names the field if it can
            self._check(body, key, writer, name, what, thorough=True)
            raise DecodeError(f"{what}: Avro body does not decode as {name}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"{what}: decoded to {type(record).__name__}, expected a {name} record")
        return record, None

    def _check(self, body: bytes, key: Any, writer: Any, name: str, what: str, thorough: bool) -> None:
        found = self._checkers.get((key, thorough))
        if found is None or found[0] is not writer:
            try:
                found = self._checkers[(key, thorough)] = (writer, cached_checker(writer, thorough))
            except ValueError as exc:
                raise DecodeError(f"{what}: the writer schema cannot be checked: {exc}") from exc
        try:
            used = found[1](body, self.max_string_bytes, self.max_items)
        except BodyError as exc:
            raise DecodeError(f"{what}: Avro body does not decode as {name}: field {exc}") from None
        except IndexError:
            used = len(body) + 1
        if used > len(body):
            raise DecodeError(f"{what}: Avro body does not decode as {name}: it ends early ({len(body)} bytes)")
        if used < len(body):
            raise DecodeError(f"{what}: {len(body) - used} trailing bytes after the {name} body")


class SingleObjectCodec(_StrictBodies):
    header_size = len(SOE_MAGIC) + 8  # bytes before the Avro body

    """Avro single-object encoding resolved against the local schema folder.

    Decoding is strict; see :class:`_StrictBodies` for the size limits, whose
    defaults are ``DEFAULT_MAX_RECORD_BYTES`` (1 MiB), ``DEFAULT_MAX_STRING_BYTES``
    (the record limit) and ``DEFAULT_MAX_ITEMS`` (10,000).
    """

    def __init__(
        self,
        store: SchemaStore | None = None,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        super().__init__(max_record_bytes, max_string_bytes, max_items)
        self.store = store or default_store()

    def encode(self, record_type: str, record: Mapping[str, Any], topic: str = "") -> bytes:
        schema = self.store.latest(record_type)
        return SOE_MAGIC + schema.fingerprint + _write_body(schema, record)

    def header(self, record_type: str, topic: str = "") -> bytes:
        """The bytes before the Avro body that :meth:`encode` writes for ``record_type``."""
        return SOE_MAGIC + self.store.latest(record_type).fingerprint

    def decode(self, data: bytes, record_type: str, topic: str = "") -> dict[str, Any]:
        return self.decode_marked(data, record_type, topic)[0]

    def decode_marked(self, data: bytes, record_type: str, topic: str = "") -> tuple[dict[str, Any], Marks | None]:
        """As :meth:`decode`, with where the fields are in the body (after ``header_size`` bytes), if known."""
        where = f"record on {topic}" if topic else "record"
        if len(data) < 10 or data[:2] != SOE_MAGIC:
            raise DecodeError(
                f"{where}: not Avro single-object encoded (expected C3 01 + 8-byte fingerprint, "
                f"got {data[:10].hex(' ') or 'empty value'}); if producers use a Schema Registry, "
                "set framing=confluent"
            )
        writer = self.store.by_fingerprint(data[2:10])
        if writer is None:
            raise DecodeError(
                f"{where}: schema fingerprint {data[2:10].hex()} is not any version under "
                f"{self.store.root}; the writer used a newer schema: upgrade preflog or add its .avsc"
            )
        if writer.name != record_type:
            raise DecodeError(f"{where}: is a {writer.name} (v{writer.version}), expected a {record_type}")
        return self._read_marked(data[10:], writer.fingerprint, writer.reader, self.store.latest(record_type), where)


class ConfluentCodec(_StrictBodies):
    header_size = len(CONFLUENT_MAGIC) + 4

    """Confluent wire format against a Schema Registry (``mock://`` works for tests).

    Decoding is strict, with the same limits as :class:`SingleObjectCodec`.
    """

    def __init__(
        self,
        registry: Any,
        store: SchemaStore | None = None,
        auto_register: bool = True,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        super().__init__(max_record_bytes, max_string_bytes, max_items)
        if isinstance(registry, str):
            registry = SchemaRegistryClient.new_client({"url": registry})
        elif isinstance(registry, Mapping):
            registry = SchemaRegistryClient.new_client(dict(registry))
        self.registry = registry
        self.store = store or default_store()
        self.auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, tuple[str, Any]] = {}

    def _schema_id(self, record_type: str, topic: str) -> int:
        key = (record_type, topic)
        if key not in self._ids:
            from confluent_kafka.schema_registry import Schema

            schema = Schema(json.dumps(self.store.latest(record_type).raw), "AVRO")
            subject = f"{topic}-value"
            if self.auto_register:
                self._ids[key] = self.registry.register_schema(subject, schema)
            else:
                self._ids[key] = self.registry.lookup_schema(subject, schema).schema_id
        return self._ids[key]

    def _writer(self, schema_id: int, where: str) -> tuple[str, Any]:
        if schema_id not in self._writers:
            try:
                registered = self.registry.get_schema(schema_id)
                raw = json.loads(registered.schema_str)
                name, writer = raw.get("name", ""), fastavro.parse_schema(strip_uuid(raw))
            except Exception as exc:
                raise DecodeError(f"{where}: schema id {schema_id} not found in the registry: {exc}") from exc
            if name in self.store.names and writer == self.store.latest(name).reader:
                writer = self.store.latest(name).reader  # the newest local schema itself: the fast reader takes it
            self._writers[schema_id] = (name, writer)
        return self._writers[schema_id]

    def encode(self, record_type: str, record: Mapping[str, Any], topic: str) -> bytes:
        schema = self.store.latest(record_type)
        body = _write_body(schema, record)
        return CONFLUENT_MAGIC + struct.pack(">I", self._schema_id(record_type, topic)) + body

    def header(self, record_type: str, topic: str) -> bytes:
        """The bytes before the Avro body that :meth:`encode` writes for ``record_type`` on ``topic``."""
        return CONFLUENT_MAGIC + struct.pack(">I", self._schema_id(record_type, topic))

    def decode(self, data: bytes, record_type: str, topic: str) -> dict[str, Any]:
        return self.decode_marked(data, record_type, topic)[0]

    def decode_marked(self, data: bytes, record_type: str, topic: str) -> tuple[dict[str, Any], Marks | None]:
        """As :meth:`decode`, with where the fields are in the body (after ``header_size`` bytes), if known."""
        where = f"record on {topic}"
        if len(data) < 5 or data[:1] != CONFLUENT_MAGIC:
            raise DecodeError(
                f"{where}: not in Confluent wire format (expected 00 + 4-byte schema id, "
                f"got {data[:5].hex(' ') or 'empty value'}); if producers use single-object "
                "encoding, set framing=single-object"
            )
        (schema_id,) = struct.unpack(">I", data[1:5])
        name, writer = self._writer(schema_id, where)
        if name != record_type:
            raise DecodeError(f"{where}: schema id {schema_id} is a {name or 'non-record'}, expected a {record_type}")
        return self._read_marked(data[5:], schema_id, writer, self.store.latest(record_type), where)
