"""The compact expiry index: the same order as a heap of (expires_ms, request_id) tuples."""

from __future__ import annotations

import heapq
import uuid
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from preflog.processors.due import DueIndex

request_ids = st.one_of(
    st.uuids().map(str),  # canonical: packed
    st.uuids().map(lambda u: str(u).upper()),  # another spelling: kept as written
    st.text(min_size=0, max_size=40),
)
steps = st.lists(st.one_of(st.tuples(st.integers(0, 2**45), request_ids), st.none()), max_size=80)


@given(st.lists(st.tuples(st.integers(0, 2**45), request_ids), max_size=30), steps)
def test_pops_come_in_time_order_and_give_back_exactly_what_was_pushed(
    start: list[tuple[int, str]], ops: list[tuple[int, str] | None]
) -> None:
    due = DueIndex(start)
    reference = list(start)
    heapq.heapify(reference)
    popped: list[tuple[int, str]] = []
    expected: list[tuple[int, str]] = []
    for op in ops:
        if op is None:
            if reference:
                assert due.first() == reference[0][0]
                expected.append(heapq.heappop(reference))
                popped.append(due.pop())
        else:
            due.push(*op)
            heapq.heappush(reference, op)
        assert len(due) == len(reference)
    while reference:
        expected.append(heapq.heappop(reference))
        popped.append(due.pop())
    assert due.first() is None and len(due) == 0
    assert [t for t, _ in popped] == [t for t, _ in expected]  # ties may come in another order
    assert Counter(popped) == Counter(expected)


def test_a_canonical_uuid_is_stored_packed_and_given_back_as_written() -> None:
    rid = str(uuid.uuid4())
    due = DueIndex([(1_795_600_000_000, rid)])
    assert due._packed and not due._other
    assert due.pop() == (1_795_600_000_000, rid)
