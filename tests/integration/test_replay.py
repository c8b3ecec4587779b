"""`preflog replay` on the embedded broker: equal to the live pipeline, reproducible, dry-run inert, ranges honoured."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import preflog
from preflog.cli import app
from preflog.deploy.broker import EmbeddedBroker
from preflog.processors import replay as replay_module
from preflog.processors import replay_merge
from preflog.producers import PreflogProducer
from preflog.producers.generator import GeneratedEvent, TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.settings import TopicSettings
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from ..conftest import T0
from .conftest import StartProcessor
from .processor_helpers import CODEC, expected_pairs
from .test_cli import _env
from .test_sink import wait_rows

pytestmark = pytest.mark.integration


def traffic(requests: int, seed: int) -> list[GeneratedEvent]:
    """Generated traffic with the default noise: missing feedback, orphans, duplicates, out of order, invalid."""
    return generate(TrafficProfile(requests=requests, rate=50, seed=seed), start=T0)


def run_replay(
    broker: EmbeddedBroker, topics: TopicSettings, data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Any:
    env = {
        **_env(broker, topics),
        "PREFLOG_DATA_DIR": str(data_dir),
        "PREFLOG_SINK__MAX_ROWS": "250",
        "PREFLOG_PROCESSOR__WINDOW_S": "600",  # the live workers' join settings (tests/integration/conftest.py)
        "PREFLOG_PROCESSOR__GRACE_S": "60",
        **(env or {}),
    }
    result = CliRunner().invoke(app, ["replay", *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def rows(table: pa.Table, key: str, drop: tuple[str, ...] = ()) -> dict[Any, dict[str, Any]]:
    return {str(r[key]): {k: v for k, v in r.items() if k not in drop} for r in table.to_pylist()}


def digests(root: Path) -> dict[str, str]:
    """sha256 of every Parquet file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


def test_replay_equals_live_output_and_two_replays_are_identical(
    broker: EmbeddedBroker,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
    start_sink: Any,
    tmp_path: Path,
) -> None:
    events = traffic(400, seed=11)
    expected = expected_pairs(events)
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        sent = send_traffic(events, log, pace=False)
    start_processor()
    live_url = f"file://{tmp_path / 'audit'}"
    start_sink(live_url)
    live = wait_rows(live_url, len(expected))
    assert live is not None and set(live.column("pair_id").to_pylist()) == expected

    data_dir = tmp_path / "data"
    first = run_replay(broker, topics, data_dir, "--name", "first", "--output", f"file://{tmp_path / 'r1'}")
    run_replay(broker, topics, data_dir, "--name", "second", "--output", f"file://{tmp_path / 'r2'}")
    assert f"{sum(sent.values())} records to read" in first.output  # the plan's count is exact
    assert "pairs written" in first.output and "partition" in first.output

    replayed = preflog.read_pairs(f"file://{tmp_path / 'r1'}")
    assert replayed.num_rows == len(expected)  # every pair once
    assert rows(replayed, "pair_id") == rows(live, "pair_id")  # same pair_ids, every column equal
    for table, key, drop in (("unpaired", "signal_id", ()), ("dead_letter", "source_offset", ("failed_at",))):
        live_rows = rows(preflog.read_table(live_url, table), key, drop)
        assert live_rows, table
        assert rows(preflog.read_table(f"file://{tmp_path / 'r1'}", table), key, drop) == live_rows

    one, two = digests(tmp_path / "r1"), digests(tmp_path / "r2")
    assert one and one == two  # two replays: the same files, byte for byte
    report = verify(Storage(f"file://{tmp_path / 'r1'}"))
    assert report.ok and report.rows >= len(expected), report
    group = CliRunner().invoke(
        app, ["offsets", "show", "--group", "preflog-processor-replay-first"], env=_env(broker, topics)
    )
    assert group.exit_code == 0 and topics.inference in group.output and topics.feedback in group.output


def test_replay_of_a_partition_and_of_a_time_range(
    broker: EmbeddedBroker, kafka_config: dict[str, Any], topics: TopicSettings, tmp_path: Path
) -> None:
    early, late = traffic(150, seed=21), traffic(150, seed=22)
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        send_traffic(early, log, pace=False)
        time.sleep(1.0)
        cut = datetime.now(timezone.utc)
        time.sleep(1.0)
        send_traffic(late, log, pace=False)
    data = tmp_path / "data"

    run_replay(broker, topics, data, "--name", "early", "--to", cut.isoformat())
    run_replay(broker, topics, data, "--name", "late", "--from", cut.isoformat())
    replays = f"file://{data.resolve()}/audit/_replays"  # the default output, beside (not in) the live log
    assert set(preflog.read_pairs(f"{replays}/early").column("pair_id").to_pylist()) == expected_pairs(early)
    assert set(preflog.read_pairs(f"{replays}/late").column("pair_id").to_pylist()) == expected_pairs(late)

    run_replay(broker, topics, data, "--name", "all")
    everything = preflog.read_pairs(f"{replays}/all")
    run_replay(broker, topics, data, "--name", "p1", "--partition", "1")
    one = preflog.read_pairs(f"{replays}/p1")
    in_p1 = {r["pair_id"] for r in everything.to_pylist() if r["feedback_offset"]["partition"] == 1}
    assert in_p1 and set(one.column("pair_id").to_pylist()) == in_p1


def test_dry_run_prints_the_plan_and_writes_nothing(
    broker: EmbeddedBroker, kafka_config: dict[str, Any], topics: TopicSettings, tmp_path: Path
) -> None:
    events = traffic(60, seed=31)
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        sent = send_traffic(events, log, pace=False)
    data = tmp_path / "data"
    result = run_replay(broker, topics, data, "--name", "plan", "--dry-run", "--start-offset", "feedback:0=5")
    assert "dry run" in result.output and f"{data.resolve()}/audit/_replays/plan" in result.output
    assert f"{sum(sent.values()) - 5} records to read" in result.output
    assert not data.exists()  # no output folder, no state
    describe = CliRunner().invoke(
        app, ["offsets", "show", "--group", "preflog-processor-replay-plan"], env=_env(broker, topics)
    )
    assert describe.exit_code == 0 and topics.inference not in describe.output  # no offsets committed


def test_replay_refuses_the_live_log_and_a_used_name(
    broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path
) -> None:
    env = {**_env(broker, topics), "PREFLOG_DATA_DIR": str(tmp_path)}
    live = f"file://{(tmp_path / 'audit').resolve()}"
    for output in (live, f"{live}/pairs", str(tmp_path.resolve())):
        refused = CliRunner().invoke(app, ["replay", "--output", output], env=env)
        assert refused.exit_code != 0 and "never writes there" in str(refused.exception), output
    Storage(f"{live}/_replays/once").put("marker.txt", b"x")
    again = CliRunner().invoke(app, ["replay", "--name", "once"], env=env)
    assert "already holds files" in str(again.exception)


def nothing_selected(result: Any) -> str:
    """The output of a replay that selected nothing: exit 1, said plainly, and no hint to read what is not there."""
    assert result.exit_code == 1, result.output
    assert "nothing selected" in result.output and "read it" not in result.output, result.output
    return str(result.output)


def test_a_replay_that_selects_nothing_says_why_and_exits_1(
    broker: EmbeddedBroker, kafka_config: dict[str, Any], topics: TopicSettings, tmp_path: Path
) -> None:
    env = {**_env(broker, topics), "PREFLOG_DATA_DIR": str(tmp_path / "data")}

    def replay(*args: str) -> Any:
        return CliRunner().invoke(app, ["replay", *args], env=env)

    empty = nothing_selected(replay("--name", "empty"))  # empty topics
    assert f"inference partition 0 ({topics.inference}): holds no records" in empty
    assert nothing_selected(replay("--name", "empty-plan", "--dry-run"))  # the plan says so too

    with PreflogProducer(kafka_config, CODEC, topics) as log:
        sent = send_traffic(traffic(80, seed=51), log, pace=False)
    past = nothing_selected(replay("--name", "past", "--start-offset", "100000"))
    assert "--start-offset 100000 is past its end" in past and "holds offsets 0-" in past
    for when in (["--to", "2001-01-01T00:00:00Z"], ["--from", "2100-01-01T00:00:00Z"]):
        early = nothing_selected(replay("--name", f"t{when[0]}", *when))
        assert when[1] in early, early  # the asked time range beside each partition's own
        assert f"none of the {sum(sent.values())} records read" in early or "none written at or after --from" in early
        assert "written 20" in early or "--from" in early
    assert not (tmp_path / "data" / "audit" / "_replays" / "past").exists()

    one = replay("--name", "one", "--start-offset", "inference:0=100000")  # one partition past its end, the rest read
    assert one.exit_code == 0, one.output
    assert f"note: inference partition 0 ({topics.inference}): holds offsets 0-" in one.output
    assert "is past its end" in one.output and "read it: preflog.read_pairs" in one.output


def test_replay_pauses_an_input_read_ahead_and_cuts_files_by_bytes_with_the_same_rows(
    broker: EmbeddedBroker,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An input that runs ahead of the other in its merge is paused, then resumed: the same files.

    Files are also cut at max_bytes of encoded outputs, as the live sink cuts them: more files, the same rows.
    """
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        send_traffic(traffic(3000, seed=41), log, pace=False)
    data = tmp_path / "data"
    pauses: list[int] = []

    def counted(reader: Any, ranges: Any, merges: Any, paused: set[tuple[str, int]]) -> None:
        before = set(paused)
        replay_merge.throttle(reader, ranges, merges, paused)
        pauses.append(len(paused - before))

    monkeypatch.setattr(replay_module, "throttle", counted)
    run_replay(broker, topics, data, "--name", "free", "--output", f"file://{tmp_path / 'free'}")
    assert sum(pauses) == 0  # 16 MB: never reached here
    monkeypatch.setattr(replay_merge, "MERGE_HIGH_BYTES", 20_000)
    run_replay(broker, topics, data, "--name", "held", "--output", f"file://{tmp_path / 'held'}")
    assert sum(pauses) > 0  # the input ahead was paused, and resumed: every record read, the same files
    assert digests(tmp_path / "held") == digests(tmp_path / "free")

    by_bytes = f"file://{tmp_path / 'bytes'}"
    run_replay(broker, topics, data, "--name", "bytes", "--output", by_bytes, env={"PREFLOG_SINK__MAX_BYTES": "20000"})
    free = f"file://{tmp_path / 'free'}"
    assert len(digests(tmp_path / "bytes")) > len(digests(tmp_path / "free"))
    assert rows(preflog.read_pairs(by_bytes), "pair_id") == rows(preflog.read_pairs(free), "pair_id")
    assert verify(Storage(by_bytes)).ok
