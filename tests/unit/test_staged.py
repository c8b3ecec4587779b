"""The write-behind view the worker joins through: reads see pending writes; drain groups them by partition."""

from __future__ import annotations

from preflog.processors.staged import StagedState


def test_reads_see_pending_writes_and_deletes_until_drained() -> None:
    base = {"a": 1, "b": 2}
    state = StagedState(base)
    state.partition = 0
    state["a"] = 10
    state.partition = 2
    state["c"] = 3
    del state["b"]
    assert (state["a"], state.get("b"), state["c"]) == (10, None, 3)
    assert sorted(state) == ["a", "c"] and len(state) == 2
    assert base == {"a": 1, "b": 2}  # nothing reaches the table before drain
    assert state.drain() == {0: [("a", 10)], 2: [("c", 3), ("b", None)]}
    assert state.drain() == {}
    assert state["a"] == 1  # the caller applies the drained changes to the table


def test_a_key_written_again_in_a_batch_keeps_its_last_value_and_partition() -> None:
    state = StagedState({})
    state.partition = 1
    state["k"] = "first"
    state.partition = 1
    state["k"] = "second"
    assert state.drain() == {1: [("k", "second")]}


def test_discard_forgets_an_abandoned_batch() -> None:
    """A failed batch's changes must never reach the table with a later batch (once: KeyError 0 in write_state)."""
    state = StagedState({"a": 1})
    state.partition = 0
    state["a"] = 2
    del state["a"]
    state["b"] = 3
    state.discard()
    assert state.drain() == {} and state["a"] == 1 and state.get("b") is None
