"""A write-behind view of a table: writes are held until the outputs they caused are delivered.

If the worker dies after its state is saved but before the pairs it emitted
reach Kafka, a restart would treat the re-read feedback as a duplicate and
the pairs would be lost. Holding the writes until delivery makes the order
"outputs, then state, then offsets" for each batch of records. Each write
remembers the partition of the record that caused it (``partition``), so the
batch's changes go to the right changelog partition.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from .exceptions import StateError

__all__ = ["StagedState"]

_DELETED = object()


class StagedState(MutableMapping[str, Any]):
    """Reads see pending writes; :meth:`drain` hands them over, by partition."""

    def __init__(self, base: MutableMapping[str, Any]) -> None:
        self.base = base
        self.pending: dict[str, Any] = {}
        self.partition = 0  # the partition whose record is being joined: where its writes belong
        self.partitions: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.pending.get(key, None)
        if value is _DELETED:
            raise KeyError(key)
        if value is not None:
            return value
        try:
            return self.base[key]
        except KeyError:
            raise
        except Exception as exc:  # the store failed: not something a record can cause
            raise StateError(f"reading {key!r} from the join state: {type(exc).__name__}: {exc}") from exc

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value
        self.partitions[key] = self.partition

    def __delitem__(self, key: str) -> None:
        self.pending[key] = _DELETED
        self.partitions[key] = self.partition

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key, value in self.pending.items():
            seen.add(key)
            if value is not _DELETED:
                yield key
        try:
            yield from (k for k in self.base if k not in seen)
        except Exception as exc:
            raise StateError(f"scanning the join state: {type(exc).__name__}: {exc}") from exc

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        """Current entries; reads the underlying mapping in one pass (a table scan, not key lookups)."""
        for key, value in self.pending.items():
            if value is not _DELETED:
                yield key, value
        try:
            yield from ((k, v) for k, v in self.base.items() if k not in self.pending)
        except Exception as exc:
            raise StateError(f"scanning the join state: {type(exc).__name__}: {exc}") from exc

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def discard(self) -> None:
        """Forget the pending changes (their batch was abandoned: they must never be written)."""
        self.pending.clear()
        self.partitions.clear()

    def drain(self) -> dict[int, list[tuple[str, Any | None]]]:
        """The pending changes by partition (value None = deleted), removed from this view."""
        changes: dict[int, list[tuple[str, Any | None]]] = {}
        for key, value in self.pending.items():
            changes.setdefault(self.partitions[key], []).append((key, None if value is _DELETED else value))
        self.pending.clear()
        self.partitions.clear()
        return changes
