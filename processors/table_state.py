"""The join state as the Joiner sees it in the worker: typed views over the staged bytes table.

The Joiner reads and writes ``request_id -> Entry`` and ``partition -> stream
time``; the Faust Table holds bytes (key scheme and encoding in
:mod:`preflog.processors.entry`). These views translate, and file each write
under its partition (an entry's own ``partition``, a stream time's key) in
:class:`~preflog.processors.staged.StagedState`, which holds it until the
batch's checkpoint writes it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from .entry import (
    Entry,
    decode_entry,
    decode_stream_time,
    encode_entry,
    encode_stream_time,
    entry_due,
    entry_key,
    legacy_stream_time_key,
    request_id_of,
    stream_time_key,
    stream_time_partition,
)
from .exceptions import StateError
from .staged import StagedState

__all__ = ["TableEntries", "TableStreamTimes"]


class TableEntries(MutableMapping[str, Entry]):
    """``request_id -> Entry`` over the table's entry keys.

    Args:
        staged: the batch's write-behind view of the table.
    """

    def __init__(self, staged: StagedState[bytes, bytes]) -> None:
        self.staged = staged

    def __getitem__(self, request_id: str) -> Entry:
        return decode_entry(self.staged[entry_key(request_id)])

    def put(self, partition: int, request_id: str, entry: Entry) -> None:
        """Store ``request_id``'s entry, filed under ``partition``.

        That is the input partition of the record (or tick) that caused the write, whose changelog partition it
        goes to. The entry's own ``partition`` can differ when producers partition the two input topics
        differently; the batch holds an event of ``partition``, never necessarily one of the entry's.
        """
        self.staged.set(partition, entry_key(request_id), encode_entry(entry))

    def drop(self, partition: int, request_id: str) -> None:
        """Delete ``request_id``'s entry, filed under ``partition`` as :meth:`put` files a write."""
        self.staged.delete(partition, entry_key(request_id))

    def __setitem__(self, request_id: str, entry: Entry) -> None:
        self.put(entry.partition, request_id, entry)

    def __delitem__(self, request_id: str) -> None:
        self.drop(self[request_id].partition, request_id)  # raises KeyError for an unknown request_id

    def __iter__(self) -> Iterator[str]:
        return (rid for rid in map(request_id_of, self.staged) if rid is not None)

    def items(self) -> Iterator[tuple[str, Entry]]:  # type: ignore[override]
        """Every entry, in one scan of the table."""
        for key, value in self.staged.items():
            rid = request_id_of(key)
            if rid is not None:
                yield rid, decode_entry(value)

    def due(self) -> Iterator[tuple[str, int, int]]:
        """Every entry's request_id, partition and ``expires_ms``, in one scan; entries are not decoded."""
        for key, value in self.staged.items():
            rid = request_id_of(key)
            if rid is not None:
                partition, expires_ms = entry_due(value)
                yield rid, partition, expires_ms

    def __len__(self) -> int:
        return sum(1 for _ in self)


class TableStreamTimes(MutableMapping[int, int]):
    """``partition -> stream time (ms)`` over the table's stream-time keys.

    A stream time saved by the previous version (``"~stream-time/<p>"``) is
    read when there is no new one, and deleted when the new one is written.

    Args:
        staged: the batch's write-behind view of the table.
    """

    def __init__(self, staged: StagedState[bytes, bytes]) -> None:
        self.staged = staged
        self._migrated: set[int] = set()

    def __getitem__(self, partition: int) -> int:
        value = self.staged.get(stream_time_key(partition))
        if value is None:
            value = self.staged[legacy_stream_time_key(partition)]
        try:
            return decode_stream_time(value)
        except Exception as exc:  # no record causes this: a damaged store stops the worker, as a failing one does
            raise StateError(
                f"partition {partition}: unreadable stream time in the join state: {value[:32]!r}"
            ) from exc

    def __setitem__(self, partition: int, ms: int) -> None:
        if partition not in self._migrated:
            self._migrated.add(partition)
            if legacy_stream_time_key(partition) in self.staged:
                self.staged.delete(partition, legacy_stream_time_key(partition))
        self.staged.set(partition, stream_time_key(partition), encode_stream_time(ms))

    def __delitem__(self, partition: int) -> None:
        self[partition]  # raises KeyError
        self.staged.delete(partition, stream_time_key(partition))

    def __iter__(self) -> Iterator[int]:
        return (p for p in map(stream_time_partition, self.staged) if p is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
