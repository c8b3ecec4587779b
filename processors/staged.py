"""A write-behind view of a table: a batch's writes wait, per partition, until its outputs are delivered.

If the worker dies after its state is saved but before the pairs it emitted
reach Kafka, a restart would treat the re-read feedback as a duplicate and
the pairs would be lost. Holding the writes until delivery makes the order
"outputs, then state, then offsets" for each batch
(:class:`preflog.processors.checkpoint.Checkpoint`). Every write names its
partition (:meth:`StagedState.set`, :meth:`StagedState.delete`), so each
partition's changes go to its own changelog partition, as Quix Streams gives
each partition a transaction of its own.

While one batch's checkpoint is in flight the next batch is joined
(:class:`preflog.processors.batch.BatchJoin`): :meth:`StagedState.seal` takes
a batch's changes out of the open set but keeps them visible, newest first,
until :meth:`StagedState.release` says they are in the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from .exceptions import StateError

__all__ = ["StagedState"]

K = TypeVar("K")
V = TypeVar("V")
_DELETED: Any = object()


class StagedState(Mapping[K, V], Generic[K, V]):
    """Reads see pending writes; :meth:`drain` hands them over, by partition.

    Args:
        base: the stored data (a Faust Table, or a dict in tests); never written here.
    """

    def __init__(self, base: Mapping[K, V]) -> None:
        self.base = base
        self.pending: dict[int, dict[K, V]] = {}  # partition -> key -> value (or _DELETED)
        self.sealed: list[dict[K, Any]] = []  # changes of batches in flight, oldest first, until in the store

    def _pending(self, key: K) -> Any:
        for changes in self.pending.values():
            if key in changes:
                return changes[key]
        for layer in reversed(self.sealed):
            if key in layer:
                return layer[key]
        return None

    def __getitem__(self, key: K) -> V:
        value = self._pending(key)
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

    def set(self, partition: int, key: K, value: V) -> None:
        """Stage ``key = value`` in ``partition`` (the partition of the record that caused it)."""
        self._forget(key)
        self.pending.setdefault(partition, {})[key] = value

    def delete(self, partition: int, key: K) -> None:
        """Stage the deletion of ``key`` in ``partition``."""
        self._forget(key)
        self.pending.setdefault(partition, {})[key] = _DELETED

    def _forget(self, key: K) -> None:
        for changes in self.pending.values():
            changes.pop(key, None)

    def _staged(self) -> dict[K, Any]:
        staged: dict[K, Any] = {}
        for layer in self.sealed:
            staged.update(layer)
        for changes in self.pending.values():
            staged.update(changes)
        return staged

    def __iter__(self) -> Iterator[K]:
        staged = self._staged()
        yield from (k for k, v in staged.items() if v is not _DELETED)
        try:
            yield from (k for k in self.base if k not in staged)
        except Exception as exc:
            raise StateError(f"scanning the join state: {type(exc).__name__}: {exc}") from exc

    def items(self) -> Iterator[tuple[K, V]]:  # type: ignore[override]
        """Current entries; reads the underlying mapping in one pass (a table scan, not key lookups)."""
        staged = self._staged()
        yield from ((k, v) for k, v in staged.items() if v is not _DELETED)
        try:
            yield from ((k, v) for k, v in self.base.items() if k not in staged)
        except Exception as exc:
            raise StateError(f"scanning the join state: {type(exc).__name__}: {exc}") from exc

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def discard(self) -> None:
        """Forget the pending and sealed changes (their batch was abandoned: they must never be written)."""
        self.pending.clear()
        self.sealed.clear()

    def drain(self) -> dict[int, list[tuple[K, V | None]]]:
        """The pending changes by partition (value None = deleted), removed from this view."""
        changes, layer = self.seal()
        self.release(layer)
        return changes

    def seal(self) -> tuple[dict[int, list[tuple[K, V | None]]], dict[K, Any]]:
        """The pending changes by partition (value None = deleted); they stay visible until :meth:`release`.

        Returns:
            The changes, and the layer to pass to :meth:`release` once they are in the store.
        """
        changes = {
            partition: [(k, None if v is _DELETED else v) for k, v in staged.items()]
            for partition, staged in self.pending.items()
            if staged
        }
        layer = {k: v for staged in self.pending.values() for k, v in staged.items()}
        self.pending = {}
        self.sealed.append(layer)
        return changes, layer

    def release(self, layer: dict[K, Any]) -> None:
        """A sealed layer's changes are in the store: reads go there now."""
        self.sealed = [other for other in self.sealed if other is not layer]
