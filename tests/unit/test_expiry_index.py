"""The expiry index after a start or a rebalance: one scan of entry heads for every partition."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from preflog.processors.table_state import TableEntries

from ..conftest import feedback, inference
from .join_harness import FB, INF, Harness, at, roles


def test_after_a_rebalance_one_scan_indexes_every_partition_and_expiry_still_happens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    rids = [str(uuid.UUID(int=p + 1)) for p in range(3)]
    for p, rid in enumerate(rids):
        h.send(INF, inference(request_id=rid, event_time=at(0)), partition=p)
    h.joiner.forget_index()  # as on_assigned does
    scans: list[int] = []
    original = TableEntries.due

    def counted(self: Any) -> Any:
        scans.append(1)
        return original(self)

    monkeypatch.setattr(TableEntries, "due", counted)
    monkeypatch.setattr(TableEntries, "items", lambda self: pytest.fail("entries decoded to index them"))
    outcomes = []
    for p in range(3):  # 70 minutes later: every inference's window (60 + 5 grace) has closed
        outcomes += roles(h.send(FB, feedback(str(uuid.UUID(int=100 + p)), event_time=at(70)), partition=p))
    assert scans == [1]
    assert outcomes == ["unmatched"] * 3  # each inference expired NO_FEEDBACK; the new feedback waits
    assert all(h.state[rid].done for rid in rids)  # a marker of each stays for late feedback
