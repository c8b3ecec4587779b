"""The keys topic: every wrapped data key, and a mark for every key an erasure deleted.

Records (JSON values; no secret and no raw id in any of them):

* ``<subject>/<key id>`` -> a :class:`~.keys.DataKey`; a tombstone (no value) once the subject is erased;
* ``erased/<key id>`` -> ``{"erasure": id, "at_ms": ms}``: kept for ever, so readers tell a key that was
  erased (its fields read as erased, counted) from one that was lost (an error that names the fix).

The topic is compacted. On real Kafka, ``max.compaction.lag.ms`` bounds how long a deleted key's
older record can stay in a segment (KIP-354, made for this case); ``preflog topics create`` sets it
(:data:`TOPIC_CONFIG`). Readers load the whole topic (a record per subject and writer, small) up to the
end the fetch reports, never ListOffsets (docs: The embedded broker).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer

from preflog.errors import PreflogError
from preflog.kafka.config import producer_config
from preflog.kafka.reader import OFFSET_BEGINNING, RangeReader, Span
from preflog.kafka.topics import partition_counts

from .keys import DataKey

__all__ = [
    "ERASED",
    "TOPIC_CONFIG",
    "DirKeyStore",
    "DirWatch",
    "KeyStore",
    "KeyStoreError",
    "KeyWatch",
    "Snapshot",
    "open_store",
    "open_watch",
]

ERASED = "erased/"
#: the keys topic's configuration: compacted, a deleted key's records gone from the log within a day
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.compaction.lag.ms": str(24 * 3600 * 1000),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": str(24 * 3600 * 1000),
    "segment.ms": str(6 * 3600 * 1000),
}


class KeyStoreError(PreflogError):
    """The keys topic cannot be read or written (the message names the fix)."""


@dataclass
class Snapshot:
    """What the keys topic held when it was read."""

    keys: dict[str, DataKey] = field(default_factory=dict)  # key id -> record
    erased: dict[str, str] = field(default_factory=dict)  # key id -> erasure id
    records: int = 0  # records read, tombstones included

    def of_subject(self, subject: str) -> list[DataKey]:
        return [k for k in self.keys.values() if k.subject == subject]

    def add(self, name: str, value: bytes | None) -> None:
        """Take the latest value of the record ``name`` (a key, an erasure mark, or a tombstone)."""
        if name.startswith(ERASED):
            if value is not None:
                key_id = name[len(ERASED) :]
                self.erased[key_id] = json.loads(value).get("erasure", "")
                self.keys.pop(key_id, None)  # a put that raced an erasure loses to it
            return
        key_id = name.rsplit("/", 1)[-1]
        if value is None:
            self.keys.pop(key_id, None)
        elif key_id not in self.erased:
            self.keys[key_id] = DataKey.from_bytes(value)


class KeyStore:
    """The keys topic ``topic`` on the cluster of ``kafka_config``."""

    def __init__(self, kafka_config: Mapping[str, Any], topic: str) -> None:
        self.kafka_config = dict(kafka_config)
        self.topic = topic
        self._producer: Producer | None = None

    def _partitions(self) -> int:
        n = partition_counts(self.kafka_config, [self.topic]).get(self.topic)
        if n is None:
            where = self.kafka_config.get("bootstrap.servers", "the cluster")
            raise KeyStoreError(
                f"the keys topic {self.topic} does not exist on {where}: run `preflog topics create` "
                "(with privacy enabled), or set privacy.keys_topic to the topic the producers wrote"
            )
        return n

    def load(self, timeout: float = 60.0) -> Snapshot:
        """Every live data key and every erased key id, read from the start of each partition to its end."""
        spans = [Span(self.topic, p, OFFSET_BEGINNING) for p in range(self._partitions())]
        snap = Snapshot()
        latest: dict[str, bytes | None] = {}
        with RangeReader(self.kafka_config, "preflog-keys-reader", spans, timeout=timeout) as reader:
            for msg in reader.records():
                key = msg.key()
                if key is None:
                    continue
                latest[key.decode()] = msg.value()
                snap.records += 1
        for name in sorted(latest, key=lambda n: not n.startswith(ERASED)):
            snap.add(name, latest[name])
        return snap

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(producer_config(self.kafka_config))
        return self._producer

    def _send(self, records: Iterable[tuple[str, bytes | None]], timeout: float) -> int:
        failed: list[str] = []

        def done(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                failed.append(f"{msg.key().decode()}: {err.str()}")

        n = 0
        for key, value in records:
            self.producer.produce(self.topic, key=key.encode(), value=value, on_delivery=done)
            n += 1
        left = self.producer.flush(timeout)
        if failed or left:
            what = "; ".join(failed[:3]) or f"{left} not acknowledged in {timeout:.0f} s"
            raise KeyStoreError(f"the keys topic {self.topic} did not take {len(failed) + left} of {n} records: {what}")
        return n

    def put(self, keys: Iterable[DataKey], timeout: float = 30.0) -> int:
        """Write ``keys`` and wait until the broker has them all (before any event is sealed with them)."""
        return self._send(((k.name, k.to_bytes()) for k in keys), timeout)

    def erase(self, keys: Iterable[DataKey], erasure: str, timeout: float = 30.0) -> int:
        """Mark ``keys`` erased, then delete them (tombstones); returns the keys erased."""
        keys = list(keys)
        at = int(time.time() * 1000)
        mark = json.dumps({"erasure": erasure, "at_ms": at}).encode()
        self._send(((ERASED + k.key_id, mark) for k in keys), timeout)
        self._send(((k.name, None) for k in keys), timeout)
        return len(keys)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None  # librdkafka's client goes with its last reference (no reconnecting after)
            self._producer = None


class KeyWatch:
    """Erasures as they happen: the key ids an ``erased/`` record names, from the end of the keys topic on.

    The SDK polls it beside its delivery reports, so a producer drops the keys of an erased subject from
    its cache within a poll (events sealed in between read as erased, as the subject asked).
    """

    def __init__(self, kafka_config: Mapping[str, Any], topic: str) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        from preflog.kafka.config import consumer_config

        n = partition_counts(kafka_config, [topic]).get(topic, 0)
        self._consumer = Consumer(consumer_config(kafka_config, "preflog-keys-watch", eof=False))
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(n)])

    def poll(self) -> list[str]:
        """Key ids erased since the last poll (never waits)."""
        out = []
        for msg in self._consumer.consume(500, timeout=0):
            key = msg.key()
            if msg.error() is None and key is not None and key.startswith(ERASED.encode()):
                out.append(key[len(ERASED) :].decode())
        return out

    def close(self) -> None:
        self._consumer.close()


class DirKeyStore:
    """The same records as files of a directory: the embedded stack's store (its broker keeps no data).

    ``<dir>/keys/<subject>/<key id>.json`` and ``<dir>/erased/<key id>.json``; an erasure deletes the key's file.
    Files are written to a temporary name, synced and renamed, so a reader never sees half a key.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.topic = str(self.path)

    def load(self, timeout: float = 60.0) -> Snapshot:
        snap = Snapshot()
        for mark in sorted((self.path / "erased").glob("*.json")):
            snap.add(ERASED + mark.stem, mark.read_bytes())
        for key in sorted((self.path / "keys").glob("*/*.json")):
            snap.add(f"{key.parent.name}/{key.stem}", key.read_bytes())
        snap.records = len(snap.keys) + len(snap.erased)
        return snap

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def put(self, keys: Iterable[DataKey], timeout: float = 30.0) -> int:
        n = 0
        for k in keys:
            self._write(self.path / "keys" / k.subject / f"{k.key_id}.json", k.to_bytes())
            n += 1
        return n

    def erase(self, keys: Iterable[DataKey], erasure: str, timeout: float = 30.0) -> int:
        keys = list(keys)
        mark = json.dumps({"erasure": erasure, "at_ms": int(time.time() * 1000)}).encode()
        for k in keys:
            self._write(self.path / "erased" / f"{k.key_id}.json", mark)
        for k in keys:
            (self.path / "keys" / k.subject / f"{k.key_id}.json").unlink(missing_ok=True)
        return len(keys)

    def close(self) -> None:
        pass


class DirWatch:
    """:class:`KeyWatch` for a :class:`DirKeyStore`: the erasure marks that appeared since the last poll."""

    def __init__(self, path: Path, every_s: float = 1.0) -> None:
        self.folder = Path(path) / "erased"
        self.every_s = every_s
        self._seen = {p.stem for p in self.folder.glob("*.json")}
        self._last = time.monotonic()

    def poll(self) -> list[str]:
        if time.monotonic() - self._last < self.every_s:
            return []
        self._last = time.monotonic()
        now = {p.stem for p in self.folder.glob("*.json")}
        new, self._seen = sorted(now - self._seen), now
        return new

    def close(self) -> None:
        pass


def open_store(settings: Any) -> KeyStore | DirKeyStore:
    """The key store ``settings.privacy`` names: ``keys_dir`` when set, else the keys topic."""
    p = settings.privacy
    if p.keys_dir is not None:
        return DirKeyStore(Path(p.keys_dir))
    return KeyStore(settings.kafka.client_config(), p.keys_topic)


def open_watch(settings: Any) -> KeyWatch | DirWatch:
    p = settings.privacy
    if p.keys_dir is not None:
        return DirWatch(Path(p.keys_dir))
    return KeyWatch(settings.kafka.client_config(), p.keys_topic)
