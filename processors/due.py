"""When each open request_id of a partition is due to expire: a compact min-heap.

An open inference costs the worker this index entry in memory (its state
lives in the table's store). A heap of ``(expires_ms, request_id)`` tuples
took about 207 bytes per entry (62 MB for 300k in one process); here a
request_id in the canonical UUID form (what producers send: ``str(uuid4())``)
is packed with its time into one int, ``expires_ms << 128 | uuid``, about
56 bytes. Any other form keeps a tuple in a second heap; :meth:`DueIndex.pop`
takes the smaller head of the two.

Example:
    >>> due = DueIndex()
    >>> due.push(5, "00000000-0000-0000-0000-000000000001")
    >>> due.push(3, "not-a-uuid")
    >>> due.pop(), due.pop(), len(due)
    ((3, 'not-a-uuid'), (5, '00000000-0000-0000-0000-000000000001'), 0)
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable

__all__ = ["DueIndex"]

_BITS = 128
_MASK = (1 << _BITS) - 1


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _packed(expires_ms: int, request_id: str) -> int | None:
    """``expires_ms`` and the UUID in one int, if ``request_id`` is a canonical UUID (and the time is not negative)."""
    if expires_ms < 0 or not _CANONICAL.fullmatch(request_id):  # upper case or another spelling: kept as written
        return None
    return expires_ms << _BITS | int(request_id.replace("-", ""), 16)


def _request_id(packed: int) -> str:
    h = f"{packed & _MASK:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class DueIndex:
    """A min-heap of ``(expires_ms, request_id)``, packed where it can be.

    Args:
        items: what to start with (heapified once).
    """

    def __init__(self, items: Iterable[tuple[int, str]] = ()) -> None:
        self._packed: list[int] = []
        self._other: list[tuple[int, str]] = []
        for expires_ms, request_id in items:
            packed = _packed(expires_ms, request_id)
            if packed is None:
                self._other.append((expires_ms, request_id))
            else:
                self._packed.append(packed)
        heapq.heapify(self._packed)
        heapq.heapify(self._other)

    def __len__(self) -> int:
        return len(self._packed) + len(self._other)

    def push(self, expires_ms: int, request_id: str) -> None:
        """Add ``request_id``, due at ``expires_ms``."""
        packed = _packed(expires_ms, request_id)
        if packed is None:
            heapq.heappush(self._other, (expires_ms, request_id))
        else:
            heapq.heappush(self._packed, packed)

    def first(self) -> int | None:
        """The earliest ``expires_ms`` (None: empty)."""
        candidates = []
        if self._packed:
            candidates.append(self._packed[0] >> _BITS)
        if self._other:
            candidates.append(self._other[0][0])
        return min(candidates) if candidates else None

    def pop(self) -> tuple[int, str]:
        """Remove and return the earliest ``(expires_ms, request_id)``.

        Raises:
            IndexError: the index is empty.
        """
        if self._packed and (not self._other or self._packed[0] >> _BITS <= self._other[0][0]):
            packed = heapq.heappop(self._packed)
            return packed >> _BITS, _request_id(packed)
        return heapq.heappop(self._other)
