"""Find marker strings in plaintext in everything preflog wrote or holds: files, RocksDB, Kafka topics.

A marker is ``MARKER-<NAME>-<tag>`` (:data:`MARKER`). Only marker names are ever reported, never the text
around them. What is compressed or encoded is decoded first, so a marker cannot hide in it:

* files: gzip, bz2, xz and zstd streams are decompressed (zstd without ``zstandard`` installed is reported
  as undecodable, never skipped); Parquet files are decoded with pyarrow, every value of every column
  walked (binary values, e.g. a dead letter's Avro record, scanned and decoded in turn); DuckDB database
  files are opened and every table read; long base64 runs (data URIs in HTML, JSON bytes) are decoded;
* RocksDB databases (a folder with ``CURRENT``) are read through their API with ``rocksdict``, every key
  and value of every column family (SST blocks are compressed on disk);
* Kafka: every record of the given topics from the beginning, keys, values and headers (the client
  decompresses record batches).

Raw bytes are scanned as well as their decoded forms.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "Scan", "scan_kafka", "scan_paths"]

MARKER = re.compile(rb"MARKER-[A-Z]+-[A-Za-z0-9]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")
_MAX_DEPTH = 6


@dataclass
class Scan:
    """What a scan found: marker -> the places holding it in plaintext; what it read, by store."""

    hits: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    undecodable: list[str] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # store -> items read
    sealed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # store -> sealed values seen

    def places(self, prefix: str) -> dict[str, set[str]]:
        """Place -> markers (starting with ``prefix``) found there."""
        out: dict[str, set[str]] = defaultdict(set)
        for marker, where in self.hits.items():
            if marker.startswith(prefix):
                for place in where:
                    out[place].add(marker)
        return dict(out)

    def markers(self, prefix: str) -> set[str]:
        return {m for m in self.hits if m.startswith(prefix)}

    # -- scanning ---------------------------------------------------------------------------------

    def data(self, where: str, data: bytes | str | None, store: str, depth: int = 0) -> None:
        """Scan ``data`` raw, then whatever it decodes to."""
        if data is None:
            return
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        for m in MARKER.findall(raw):
            self.hits[m.decode()].add(where)
        self.sealed[store] += raw.count(b"pf1:")
        if depth >= _MAX_DEPTH or len(raw) < 4:
            return
        inner = self._decompressed(where, raw)
        if inner is not None:
            self.data(where + "|decompressed", inner, store, depth + 1)
            return
        if raw[:4] == b"PAR1" and raw[-4:] == b"PAR1":
            self.parquet(where, raw, store, depth + 1)
            return
        for run in _BASE64.findall(raw):
            try:
                decoded = base64.b64decode(run + b"=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            if MARKER.search(decoded) or self._decompressed(where, decoded) is not None or decoded[:4] == b"PAR1":
                self.data(where + "|base64", decoded, store, depth + 1)

    def _decompressed(self, where: str, raw: bytes) -> bytes | None:
        try:
            if raw[:2] == b"\x1f\x8b":
                return gzip.decompress(raw)
            if raw[:3] == b"BZh":
                return bz2.decompress(raw)
            if raw[:6] == b"\xfd7zXZ\x00":
                return lzma.decompress(raw)
        except (OSError, EOFError, ValueError, lzma.LZMAError):
            return None  # the magic bytes by chance
        if raw[:4] == b"\x28\xb5\x2f\xfd":
            try:
                import zstandard
            except ImportError:
                self.undecodable.append(f"{where}: a zstd stream and no zstandard module to read it")
                return None
            out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            return out
        return None

    def value(self, where: str, value: Any, store: str, depth: int = 0) -> None:
        """Walk a decoded value (dicts, lists, tuples) and scan every text and bytes in it."""
        if isinstance(value, str | bytes | bytearray | memoryview):
            self.data(where, bytes(value) if not isinstance(value, str) else value, store, depth)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.value(where, k, store, depth)
                self.value(where, v, store, depth)
        elif isinstance(value, list | tuple | set):
            for v in value:
                self.value(where, v, store, depth)

    def parquet(self, where: str, raw: bytes, store: str, depth: int = 0) -> None:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(raw))
        except Exception as exc:  # a file that looks like Parquet and is not: say so, never skip it silently
            self.undecodable.append(f"{where}: Parquet that does not read ({type(exc).__name__})")
            return
        self.read[store] += table.num_rows
        for name in table.column_names:
            self.value(f"{where}[{name}]", table.column(name).to_pylist(), store, depth)

    def duckdb_file(self, where: str, path: Path, store: str) -> None:
        import duckdb

        try:
            con = duckdb.connect(str(path), read_only=True)
        except Exception as exc:
            self.undecodable.append(f"{where}: a DuckDB file that does not open ({type(exc).__name__})")
            return
        try:
            tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
            for schema, name in tables:
                rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
                self.read[store] += len(rows)
                self.value(f"{where}[{schema}.{name}]", [list(r) for r in rows], store)
        finally:
            con.close()

    def rocksdb(self, where: str, folder: Path, store: str) -> None:
        from rocksdict import AccessType, Rdict

        db = Rdict(str(folder), access_type=AccessType.read_only())  # a foreign database: opened in raw mode
        try:
            for cf in Rdict.list_cf(str(folder)):
                handle = db if cf == "default" else db.get_column_family(cf)
                for k, v in handle.items():
                    key, value = _bytes(k), _bytes(v)  # raw mode: bytes
                    self.read[store] += 1
                    self.data(f"{where}[{cf}] key", key, store)
                    self.data(f"{where}[{cf}] value", value, store)
                    self._entry(f"{where}[{cf}] value", key, value, store)
        finally:
            db.close()

    def _entry(self, where: str, key: bytes, value: bytes | None, store: str) -> None:
        """A join-state entry decoded, and the records it stores decoded with the codec."""
        from preflog.processors.entry import decode_entry, is_stream_time
        from preflog.schemas.codec import SingleObjectCodec

        if value is None or is_stream_time(key):
            return
        try:
            entry = decode_entry(value)
        except Exception:
            return  # not an entry (a stream time of another form): its bytes were scanned raw
        codec = SingleObjectCodec()
        stored = ([entry.inference] if entry.inference else []) + list(entry.feedback)
        for i, s in enumerate(stored):
            self.data(f"{where} stored[{i}]", s.value, store)
            record_type = "InferenceEvent" if s is entry.inference else "FeedbackEvent"
            try:
                self.value(f"{where} stored[{i}] decoded", codec.decode(s.value, record_type), store)
            except Exception:
                self.undecodable.append(f"{where} stored[{i}]: its record does not decode as {record_type}")


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def rocksdb_folders(roots: Iterable[Path]) -> list[Path]:
    """Every RocksDB database under ``roots`` (a folder holding CURRENT and an SST or WAL file)."""
    found = []
    for root in roots:
        for current in sorted(root.rglob("CURRENT")):
            folder = current.parent
            if any(folder.glob("MANIFEST-*")):
                found.append(folder)
    return found


def scan_paths(roots: Iterable[Path], scan: Scan | None = None, label: str = "files") -> Scan:
    """Scan every file under ``roots`` (decoded as the module says) and every RocksDB database there."""
    scan = scan or Scan()
    roots = [Path(r) for r in roots]
    for path in _files(roots):
        raw = path.read_bytes()
        where = f"{label}:{path}"
        scan.read[label] += 1
        scan.data(where, raw, label)
        if raw[8:12] == b"DUCK":
            scan.duckdb_file(where, path, label)
    for folder in rocksdb_folders(roots):
        scan.rocksdb(f"rocksdb:{folder}", folder, "rocksdb")
    return scan


def scan_kafka(config: dict[str, Any], topics: Iterable[str], scan: Scan | None = None, quiet_s: float = 3.0) -> Scan:
    """Scan every record of ``topics`` from the beginning (until none arrived for ``quiet_s`` seconds)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from preflog.kafka.config import consumer_config

    scan = scan or Scan()
    names = list(topics)
    metadata = AdminClient(config).list_topics(timeout=20).topics
    assignment = [TopicPartition(t, p, -2) for t in names for p in metadata[t].partitions]
    consumer = Consumer(consumer_config(config, "preflog-erasure-scan", quiet=True))
    consumer.assign(assignment)
    last = time.monotonic()
    deadline = last + 120
    try:
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    continue
                last = time.monotonic()
                topic = msg.topic() or "?"
                store = f"kafka:{topic}"
                where = f"kafka:{topic}[{msg.partition()}]@{msg.offset()}"
                scan.read[store] += 1
                scan.data(where + " key", msg.key(), store)
                scan.data(where + " value", msg.value(), store)
                if topic.endswith("-changelog") and msg.key() is not None and msg.value() is not None:
                    scan._entry(where + " value", msg.key() or b"", msg.value() or b"", store)
                for header in msg.headers() or []:
                    scan.data(where + " header", header[0], store)
                    scan.data(where + " header", header[1], store)
    finally:
        consumer.close()
    return scan
