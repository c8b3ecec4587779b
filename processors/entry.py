"""One request_id's join state as a typed entry, and how the table stores it.

The worker keeps the join state in one Faust Table whose keys and values are
raw bytes (``key_type=bytes, value_type=bytes``), in two key spaces that
cannot collide:

* an entry: the key is the request_id as a JSON string (``b'"<request_id>"'``),
  byte for byte the key the previous version wrote through Faust's ``json``
  key serializer, so an upgraded worker finds the entries it restores from
  the changelog; the value is :func:`encode_entry`.
* a partition's stream time: the key is ``0xFF`` + ``b"stream-time"`` + the
  partition (4 bytes). ``0xFF`` never occurs in UTF-8, so no JSON string,
  and no request_id, can be such a key. The value is :func:`encode_stream_time`.

Values are packed with :mod:`struct`, big endian, the stored input records as
length-prefixed raw bytes (no base64, no JSON)::

    entry   = version:u8 (1)  flags:u8 (1 done, 2 inference)  partition:u32  expires_ms:i64  judged:u32
              digest_len:u8 digest  [inference: stored]  count:u32 stored*  count:u32 (id_len:u16 id)*
    stored  = topic_len:u16 topic  partition:u32  offset:i64  event_ms:i64  id_len:u16 id  value_len:u32 value

The previous version stored JSON objects with the records in base64 (keys
``p, inf, fb, seen, h, exp, n, done``); they start with ``{``, never with the
version byte, and :func:`decode_entry` (the one decoder) reads both. The
previous stream-time rows (``"~stream-time/<p>"`` -> ``{"st": ms}``) are read
by :func:`decode_stream_time`.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from preflog.schemas.codec import Codec

from .exceptions import StateError

__all__ = [
    "Entry",
    "Stored",
    "decode_entry",
    "decode_stream_time",
    "encode_entry",
    "encode_stream_time",
    "entry_key",
    "entry_size",
    "is_stream_time",
    "legacy_stream_time_key",
    "request_id_of",
    "stored_size",
    "stream_time_key",
    "stream_time_partition",
]

VERSION = 1
_DONE, _INFERENCE = 1, 2
_HEAD = struct.Struct(">BBIqI")  # version, flags, partition, expires_ms, judged
_STORED = struct.Struct(">Iqq")  # partition, offset, event_ms (between the topic and the id)
_U8, _U16, _U32 = struct.Struct(">B"), struct.Struct(">H"), struct.Struct(">I")
_STREAM_TIME = struct.Struct(">Bq")
_STREAM_TIME_PREFIX = b"\xffstream-time"
_LEGACY_STREAM_TIME = '"~stream-time/{}"'


@dataclass(frozen=True)
class Stored:
    """One input record kept in the join state: its wire bytes and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int
    event_ms: int = 0  # an inference's event time (feedback: 0)
    feedback_id: str = ""  # a waiting feedback's id (inference: "")

    @property
    def at(self) -> dict[str, Any]:
        """The record's source position, as outputs name it."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    def decode(self, codec: Codec, record_type: str) -> dict[str, Any]:
        """The stored event, decoded with ``codec`` as ``record_type`` (InferenceEvent or FeedbackEvent)."""
        return codec.decode(self.value, record_type, self.topic)


@dataclass
class Entry:
    """The join state of one request_id: its inference, or the feedback waiting for it, or an expiry marker."""

    partition: int
    expires_ms: int = 0
    inference: Stored | None = None
    feedback: list[Stored] = field(default_factory=list)  # waiting for the inference
    seen: list[str] = field(default_factory=list)  # feedback_ids already judged
    digest: bytes = b""  # sha256 of the inference's value (duplicates are ignored, conflicts dead-lettered)
    judged: int = 0  # feedback that had an outcome against the inference
    done: bool = False  # expired: kept for late_retention so late feedback is LATE


def entry_key(request_id: str) -> bytes:
    """The table key of ``request_id``'s entry (the JSON string, as the previous version's key serializer wrote)."""
    return json.dumps(request_id).encode()


def request_id_of(key: bytes) -> str | None:
    """The request_id an entry key names, or None for a key of another kind (stream time, old or new)."""
    if key[:1] != b'"' or key.startswith(b'"~stream-time/'):
        return None
    request_id: str = json.loads(key)
    return request_id


def stream_time_key(partition: int) -> bytes:
    """The table key of a partition's stream time (cannot be an entry key: see the module docstring)."""
    return _STREAM_TIME_PREFIX + _U32.pack(partition)


def stream_time_partition(key: bytes) -> int | None:
    """The partition a stream-time key names, or None for a key of another kind."""
    if not key.startswith(_STREAM_TIME_PREFIX):
        return None
    partition: int = _U32.unpack(key[len(_STREAM_TIME_PREFIX) :])[0]
    return partition


def is_stream_time(key: bytes) -> bool:
    """Whether ``key`` holds a stream time (this version's or the previous one's), not an entry."""
    return key.startswith(_STREAM_TIME_PREFIX) or key.startswith(b'"~stream-time/')


def legacy_stream_time_key(partition: int) -> bytes:
    """Where the previous version kept a partition's stream time (read once after an upgrade, then deleted)."""
    return _LEGACY_STREAM_TIME.format(partition).encode()


def encode_stream_time(ms: int) -> bytes:
    """The table value of a stream time (ms): the version byte and an int64."""
    return _STREAM_TIME.pack(VERSION, ms)


def decode_stream_time(value: bytes) -> int:
    """A stream time as :func:`encode_stream_time` or the previous version (``{"st": ms}``) wrote it."""
    if value[:1] == b"{":
        return int(json.loads(value)["st"])
    return int(_STREAM_TIME.unpack(value)[1])


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def stored_size(stored: Stored) -> int:
    """Bytes ``stored`` takes in an encoded entry."""
    return 8 + _STORED.size + _utf8_len(stored.topic) + _utf8_len(stored.feedback_id) + len(stored.value)


def entry_size(entry: Entry) -> int:
    """Bytes of :func:`encode_entry` ``(entry)``, without encoding it."""
    size = _HEAD.size + 1 + len(entry.digest) + 8
    for s in entry.feedback:
        size += stored_size(s)
    for fid in entry.seen:
        size += 2 + _utf8_len(fid)
    return size + (stored_size(entry.inference) if entry.inference else 0)


def _pack_str(text: str) -> bytes:
    data = text.encode()
    return _U16.pack(len(data)) + data


def _pack_stored(s: Stored) -> bytes:
    head = _pack_str(s.topic) + _STORED.pack(s.partition, s.offset, s.event_ms) + _pack_str(s.feedback_id)
    return head + _U32.pack(len(s.value)) + s.value


def encode_entry(entry: Entry) -> bytes:
    """The table value of ``entry`` (layout in the module docstring)."""
    flags = (_DONE if entry.done else 0) | (_INFERENCE if entry.inference else 0)
    parts = [_HEAD.pack(VERSION, flags, entry.partition, entry.expires_ms, entry.judged)]
    parts += [_U8.pack(len(entry.digest)), entry.digest]
    if entry.inference:
        parts.append(_pack_stored(entry.inference))
    parts += [_U32.pack(len(entry.feedback)), *(_pack_stored(s) for s in entry.feedback)]
    parts += [_U32.pack(len(entry.seen)), *(_pack_str(fid) for fid in entry.seen)]
    return b"".join(parts)


def _take(value: bytes, at: int, n: int) -> tuple[bytes, int]:
    """``n`` bytes of ``value`` from ``at``, and the position after them."""
    stop = at + n
    if stop > len(value):
        raise ValueError(f"truncated at byte {at} (wanted {n} of {len(value)})")
    return value[at:stop], stop


def _unpack(value: bytes, at: int, s: struct.Struct) -> tuple[Any, ...]:
    if at + s.size > len(value):
        raise ValueError(f"truncated at byte {at} (wanted {s.size} of {len(value)})")
    return s.unpack_from(value, at)


def _text(value: bytes, at: int) -> tuple[str, int]:
    data, at = _take(value, at + 2, _unpack(value, at, _U16)[0])
    return data.decode(), at


def _stored(value: bytes, at: int) -> tuple[Stored, int]:
    topic, at = _text(value, at)
    partition, offset, event_ms = _unpack(value, at, _STORED)
    feedback_id, at = _text(value, at + _STORED.size)
    data, at = _take(value, at + 4, _unpack(value, at, _U32)[0])
    return Stored(data, topic, partition, offset, event_ms, feedback_id), at


def _decode_binary(value: bytes) -> Entry:
    version, flags, partition, expires_ms, judged = _unpack(value, 0, _HEAD)
    if version != VERSION:
        raise ValueError(f"unknown version {version} (this worker reads {VERSION})")
    digest, at = _take(value, _HEAD.size + 1, _unpack(value, _HEAD.size, _U8)[0])
    inference = None
    if flags & _INFERENCE:
        inference, at = _stored(value, at)
    feedback, seen = [], []
    count, at = _unpack(value, at, _U32)[0], at + 4
    for _ in range(count):
        waiting, at = _stored(value, at)
        feedback.append(waiting)
    count, at = _unpack(value, at, _U32)[0], at + 4
    for _ in range(count):
        fid, at = _text(value, at)
        seen.append(fid)
    return Entry(partition, expires_ms, inference, feedback, seen, digest, judged, bool(flags & _DONE))


def _legacy_stored(s: dict[str, Any]) -> Stored:
    at = s["at"]
    value = base64.b64decode(s["v"])
    return Stored(value, at["topic"], at["partition"], at["offset"], s.get("et", 0), s.get("id", ""))


def _decode_legacy(value: bytes) -> Entry:
    e = json.loads(value)
    return Entry(
        partition=e["p"],
        expires_ms=e.get("exp", 0),
        inference=_legacy_stored(e["inf"]) if e.get("inf") else None,
        feedback=[_legacy_stored(s) for s in e.get("fb") or ()],
        seen=list(e.get("seen") or ()),
        digest=bytes.fromhex(e["h"]) if e.get("h") else b"",
        judged=e.get("n", 0),
        done=bool(e.get("done")),
    )


def decode_entry(value: bytes) -> Entry:
    """An entry as :func:`encode_entry` or the previous version (JSON, records in base64) wrote it.

    Raises:
        StateError: ``value`` is neither (the store, not a record, is at fault: the worker stops).
    """
    try:
        return _decode_legacy(value) if value[:1] == b"{" else _decode_binary(value)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise StateError(f"a join-state entry cannot be read ({len(value)} bytes): {exc}") from exc


def entry_due(value: bytes) -> tuple[int, int]:
    """The partition and ``expires_ms`` of an encoded entry: its head only (what the expiry index needs).

    Raises:
        StateError: ``value`` cannot be read.
    """
    if value[:1] == b"{" or value[:1] != bytes([VERSION]):
        entry = decode_entry(value)
        return entry.partition, entry.expires_ms
    try:
        _, _, partition, expires_ms, _ = _HEAD.unpack_from(value)
    except struct.error as exc:
        raise StateError(f"a join-state entry cannot be read ({len(value)} bytes): {exc}") from exc
    return int(partition), int(expires_ms)
