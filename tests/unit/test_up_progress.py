"""`preflog up`'s plain progress lines (stdout to a file or a pipe): a line when the counts change, not every 5 s."""

from __future__ import annotations

import importlib

import pytest

from preflog.deploy.progress import QuietLines

up = importlib.import_module("preflog.cli.up")  # the module; preflog.cli.up is also the command's function


def test_plain_progress_lines_are_written_when_the_counts_change_and_an_idle_stack_adds_one_per_5_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []
    monkeypatch.setattr(up, "_say", said.append)
    monkeypatch.setenv("PREFLOG_PROGRESS", "0")  # the plain lines, as in a log file
    now, status = [0.0], ["events in 0"]
    view = up.ProgressView(lambda: status[0], lambda: f"{int(now[0])}s", every=5.0, idle_s=300.0, now=lambda: now[0])
    with view:
        assert view.live is None
        for t in range(1, 601):  # ten minutes, ticked every second
            now[0] = float(t)
            if t == 100:
                status[0] = "events in 10"
            view.tick()
    assert said == [
        "5s  events in 0",  # the first check
        "100s  events in 10",  # the counts changed
        "400s  events in 10  (no change)",  # five idle minutes later, one line
        "600s  events in 10",  # the last counts, when up ends
    ]


def test_quiet_lines_take_a_changed_status_at_once_and_the_same_one_after_the_idle_time() -> None:
    quiet = QuietLines(idle_s=60.0)
    assert quiet.due("a", 0.0) and not quiet.due("a", 5.0) and not quiet.due("a", 59.9)
    assert quiet.due("a", 60.0)
    assert quiet.due("b", 61.0) and not quiet.due("b", 62.0)
