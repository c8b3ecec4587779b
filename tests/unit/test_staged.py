"""The write-behind view the worker joins through: reads see pending writes; each write names its partition."""

from __future__ import annotations

from preflog.processors.staged import StagedState


def test_reads_see_pending_writes_and_deletes_until_drained() -> None:
    base = {"a": 1, "b": 2}
    state = StagedState(base)
    state.set(0, "a", 10)
    state.set(2, "c", 3)
    state.delete(2, "b")
    assert (state["a"], state.get("b"), state["c"]) == (10, None, 3)
    assert sorted(state) == ["a", "c"] and len(state) == 2
    assert base == {"a": 1, "b": 2}  # nothing reaches the table before drain
    assert state.drain() == {0: [("a", 10)], 2: [("c", 3), ("b", None)]}
    assert state.drain() == {}
    assert state["a"] == 1  # the caller applies the drained changes to the table


def test_a_key_written_again_in_a_batch_keeps_its_last_value_and_partition() -> None:
    state: StagedState[str, str] = StagedState({})
    state.set(1, "k", "first")
    state.set(1, "k", "second")
    assert state.drain() == {1: [("k", "second")]}


def test_discard_forgets_an_abandoned_batch() -> None:
    """A failed batch's changes must never reach the table with a later batch (once: KeyError 0 in write_state)."""
    state = StagedState({"a": 1})
    state.set(0, "a", 2)
    state.delete(0, "a")
    state.set(0, "b", 3)
    state.discard()
    assert state.drain() == {} and state["a"] == 1 and state.get("b") is None
