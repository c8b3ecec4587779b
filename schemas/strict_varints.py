"""The slow path of the strict pre-pass (:mod:`.strict`): varints longer than the inlined fast path reads.

The checkers that :mod:`.strict_source` generates read one- and two-byte
varints inline and call these functions for anything longer (and for
negative lengths and counts). They check that the value fits its Avro type
and raise :class:`BodyError` with the field's path and the reason; the
generated source calls them under the names in :data:`RUNTIME`.

Every function takes the body ``data``, a position ``p``, and the field's
path as a ``template`` with loop ``indices`` (``"candidates[%d].text"``,
``(2,)``), which is only formatted when something is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .shape import INT32, INT64

__all__ = [
    "RUNTIME",
    "BodyError",
    "fail",
    "read_block",
    "read_index",
    "read_length",
    "read_varint",
    "skip_varint",
]


class BodyError(Exception):
    """The body breaks the Avro encoding at ``field``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field or 'record'}: {problem}")
        self.field = field
        self.problem = problem


def fail(template: str, indices: tuple[int, ...], problem: str) -> None:
    """Raises :class:`BodyError` for the field ``template % indices``.

    Raises:
        BodyError: always.
    """
    raise BodyError(template % indices if indices else template, problem)


def read_varint(data: bytes, p: int, bits: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """The slow path of a zigzag varint (more than one byte, or a negative length).

    Returns:
        The value and the position after it.

    Raises:
        BodyError: the value does not fit an Avro int (``bits`` 32) or long (64).
        IndexError: the body ends inside the varint.
    """
    raw = shift = 0
    limit = 5 if bits == 32 else 10
    for n in range(limit):
        b = data[p + n]
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            value = (raw >> 1) ^ -(raw & 1)
            low, high = INT32 if bits == 32 else INT64
            if not low <= value <= high:
                fail(template, indices, f"{value} does not fit an Avro {'int' if bits == 32 else 'long'}")
            return value, p + n + 1
    kind = "int (32 bits)" if bits == 32 else "long (64 bits)"
    fail(template, indices, f"varint longer than {limit} bytes does not fit an Avro {kind}")
    raise AssertionError("unreachable")


_VARINT_END = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]")


def skip_varint(data: bytes, p: int, bits: int, template: str, indices: tuple[int, ...]) -> int:
    """The position after a varint of three bytes or more whose value is not needed, checking it fits.

    Zigzag maps int32 onto 0..2**32-1 and int64 onto 0..2**64-1, so the width
    alone decides: at most 5 bytes with a last byte <= 0x0F for an int, at most
    10 with a last byte <= 0x01 for a long.

    Raises:
        BodyError: the varint does not fit the type.
        IndexError: the body ends inside the varint.
    """
    found = _VARINT_END.match(data, p)
    if found is None:
        if len(data) - p < 10:
            raise IndexError("body ends inside a varint")
        _, end = read_varint(data, p, bits, template, indices)  # raises: longer than 10 bytes
        return end
    end = found.end()
    width, last = end - p, data[end - 1]
    if (bits == 32 and (width > 5 or (width == 5 and last > 0x0F))) or (width == 10 and last > 0x01):
        read_varint(data, p, bits, template, indices)  # raises with the value in the message
    return end


def read_index(data: bytes, p: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """An enum or union index read on the slow path, as its zigzag code (``2 * index`` when >= 0)."""
    value, p = read_varint(data, p, 32, template, indices)
    return (value << 1) ^ (value >> 31), p


def read_length(data: bytes, p: int, limit: int, what: str, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """A string/bytes length on the slow path.

    Returns:
        The length and the position after it.

    Raises:
        BodyError: a negative length, or one over ``limit``.
    """
    n, p = read_varint(data, p, 64, template, indices)
    if n < 0:
        fail(template, indices, f"negative {what} length {n}")
    if n > limit:
        fail(template, indices, f"{what} of {n} bytes is longer than the limit of {limit}")
    return n, p


def read_block(data: bytes, p: int, template: str, indices: tuple[int, ...]) -> tuple[int, int]:
    """An array/map block count on the slow path.

    Returns:
        The number of entries (0 ends the value) and the position after the count (and block size).

    Raises:
        BodyError: a varint that does not fit a long, or a negative block size.
    """
    count, p = read_varint(data, p, 64, template, indices)
    if count < 0:  # a negative count is followed by the block's size in bytes
        count = -count
        size, p = read_varint(data, p, 64, template, indices)
        if size < 0:
            fail(template, indices, f"negative block size {size}")
    return count, p


#: the name each function has in the generated source
RUNTIME: dict[str, Callable[..., Any]] = {
    "_varint": read_varint,
    "_skip": skip_varint,
    "_index": read_index,
    "_length": read_length,
    "_block": read_block,
    "_fail": fail,
}
