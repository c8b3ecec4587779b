"""`preflog offsets show` in plain words: whether a group is running, and what the processor's ticks topic is."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from preflog.cli import app
from preflog.kafka import offsets
from preflog.kafka.offsets import GroupOffsets, PartitionOffsets


@pytest.mark.parametrize(
    ("state", "members", "said"),
    [
        ("STABLE", 0, "running; the broker did not list its members"),
        ("STABLE", 2, "running, 2 process(es)"),
        ("PREPARING_REBALANCING", 0, "running; its processes are joining or leaving (a rebalance)"),
        ("EMPTY", 0, "idle (no process is reading with it)"),
        ("DEAD", 0, "idle (no process is reading with it)"),
    ],
)
def test_offsets_show_says_in_plain_words_whether_a_group_runs_and_what_the_ticks_topic_is(
    monkeypatch: pytest.MonkeyPatch, state: str, members: int, said: str
) -> None:
    def describe(config: Any, group: str, topics: list[str]) -> GroupOffsets:
        return GroupOffsets(group, state, members, [PartitionOffsets(t, 0, 5, 7) for t in topics])

    monkeypatch.setattr(offsets, "describe", describe)
    monkeypatch.setattr("preflog.deploy.probe.check_broker", lambda *args, **kwargs: None)
    env = {"PREFLOG_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "PREFLOG_PROCESSOR__TICK_INTERVAL_S": "2"}
    shown = CliRunner().invoke(app, ["offsets", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())  # rich wraps long lines
    assert f"group preflog-processor: {said}" in text
    assert "no members listed by the broker" not in text and "(stable" not in text
    ticks = "preflog.processor-ticks.v1: the processor's clock, not data: it writes a tick to each partition every 2 s"
    assert ticks in text

    sink_only = CliRunner().invoke(app, ["offsets", "show", "--group", "preflog-sink"], env=env)
    assert sink_only.exit_code == 0 and "the processor's clock" not in sink_only.output  # no ticks topic shown
