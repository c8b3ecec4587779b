"""The command line against the real embedded broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from preflog.cli import app
from preflog.deploy.broker import EmbeddedBroker
from preflog.producers.files import json_default
from preflog.settings import TopicSettings

from ..conftest import feedback, inference
from ..kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def _env(broker: EmbeddedBroker, topics: TopicSettings) -> dict[str, str]:
    env = {
        "PREFLOG_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PREFLOG_TOPICS__PARTITIONS": str(topics.partitions),
    }
    env.update({f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()})
    return env


def test_produce_sends_valid_lines_and_reports_the_rest(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    good = inference(event_time="2026-11-01T12:00:00Z")
    lines = [
        json.dumps({"event_type": "inference", **good}, default=json_default),
        json.dumps(feedback(good["request_id"], event_time=1793534700000), default=json_default),
        json.dumps(inference(candidates=["lonely"]), default=json_default),
        "{oops",
        json.dumps(feedback(good["request_id"], pairwise={"chosen": 7, "rejected": 0}), default=json_default),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["produce", str(path)], env=_env(broker, topics))
    assert result.exit_code == 1, result.output
    assert "line 3: candidates: 1 given" in result.output
    assert "line 4: not JSON" in result.output
    assert "line 5: pairwise.chosen: candidate 7 does not exist" in result.output
    assert len(read_topic(kafka_config, topics.inference, topics.partitions, expect=1)) == 1
    assert len(read_topic(kafka_config, topics.feedback, topics.partitions, expect=1)) == 1


def test_dry_run_sends_nothing(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(inference(), default=json_default) + "\n" + json.dumps(inference(), default=json_default) + "\n"
    )
    result = CliRunner().invoke(app, ["produce", "--dry-run", str(path)], env=_env(broker, topics))
    assert result.exit_code == 0, result.output
    assert re.search(r"valid\s*│\s*2\b", result.output), result.output  # a count, not "all but rejected"
    assert read_topic(kafka_config, topics.inference, topics.partitions, expect=1, timeout=3) == []


def test_generate_to_file_then_produce(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "gen.jsonl"
    env = _env(broker, topics)
    result = CliRunner().invoke(app, ["generate", "--requests", "60", "--invalid", "0.3", "--out", str(path)], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["produce", str(path)], env=env)
    assert result.exit_code == 1  # the generated invalid share is refused
    assert "rejected lines" in result.output
    inferences = [json.loads(x) for x in path.read_text().splitlines() if x.startswith('{"event_type": "inference"')]
    assert len(read_topic(kafka_config, topics.inference, topics.partitions, expect=len(inferences))) == len(inferences)


def test_generate_sends_to_kafka_and_tail_decodes(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any]
) -> None:
    env = _env(broker, topics)
    result = CliRunner().invoke(app, ["generate", "--requests", "40", "--fast", "--invalid", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "inference" in result.output
    result = CliRunner().invoke(app, ["tail", "inference", "--max", "3"], env=env)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert len(records) == 3 and all(len(r["candidates"]) >= 2 for r in records)


def test_topics_list_shows_partitions(broker: EmbeddedBroker, topics: TopicSettings) -> None:
    result = CliRunner().invoke(app, ["topics", "list"], env=_env(broker, topics))
    assert result.exit_code == 0
    assert topics.pairs in result.output and "3" in result.output


def test_up_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "PREFLOG_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflog", "up", "--demo", "--requests", "30", "--rate", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    bootstrap = None
    while bootstrap is None and time.monotonic() < deadline:
        found = re.search(r"PREFLOG_KAFKA__BOOTSTRAP_SERVERS=(\S+)", "".join(lines))
        bootstrap = found[1] if found else None
        time.sleep(0.2)
    assert bootstrap, "".join(lines)
    pairs = read_topic({"bootstrap.servers": bootstrap}, "preflog.pairs.v1", 4, expect=1, timeout=90, settle=0)
    assert pairs, "the processor under `preflog up` produced no pair"
    # Ctrl-C once the demo's batch is on the broker (the first pair can come before the batch is all sent)
    sent = read_topic({"bootstrap.servers": bootstrap}, "preflog.inference.v1", 4, expect=25, timeout=60, settle=0)
    assert len(sent) >= 25
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(60)
    reader.join(10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "Kafka-protocol broker (Tansu)" in output
    assert "stopping (Ctrl-C)" in output
    counts = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in output.splitlines()
        if line.count("│") == 3 and "preflog." in line
    }
    assert int(counts["preflog.inference.v1"]) >= 25
    assert int(counts["preflog.pairs.v1"]) > 0
    assert "processor (Faust join)" in output
    assert (tmp_path / "data" / "broker" / "broker.log").exists()
    assert "events in" in output and "files written" in output  # plain progress lines: stdout is a pipe
    assert not (tmp_path / "data" / "stack.json").exists()  # removed on a clean stop


def test_a_second_up_starts_a_new_broker_and_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env["PREFLOG_DATA_DIR"] = str(data)
    command = [sys.executable, "-m", "preflog", "up", "--demo", "--requests", "20", "--rate", "40", "--duration"]
    first = subprocess.run([*command, "12"], env=env, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "from earlier runs" not in first.stdout
    second = subprocess.run([*command, "1"], env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    found = re.search(r"the audit log holds (\d+) files from earlier runs; this broker is new", second.stdout)
    assert found and int(found[1]) > 0, second.stdout
    ids = [json.loads(line)["incarnation"] for line in (data / "incarnations.log").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 2


def _event_ids(kafka_config: dict[str, Any], topics: TopicSettings, n: int) -> list[str]:
    from preflog.schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    ids = [
        f"i:{(m.key() or b'').decode()}"
        for m in read_topic(kafka_config, topics.inference, topics.partitions, expect=n, timeout=20, settle=2)
    ]
    ids += [
        f"f:{codec.decode(m.value() or b'', 'FeedbackEvent')['feedback_id']}"
        for m in read_topic(kafka_config, topics.feedback, topics.partitions, expect=0, timeout=3, settle=2)
    ]
    return ids


def test_interrupted_backfill_resumes_and_sends_every_event_once(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    env = {**os.environ, **_env(broker, topics)}
    CliRunner().invoke(
        app,
        ["generate", "--requests", "300", "--invalid", "0", "--duplicates", "0", "--out", str(path)],
        env=_env(broker, topics),
    )
    valid = len(path.read_text().splitlines())
    command = [sys.executable, "-m", "preflog", "produce", str(path), "--rate", "150"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.5)
    first.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the backfill
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 130, output
    assert "run the same command again" in output
    done = len(Path(f"{path}.progress").read_text().split())
    assert 0 < done < valid
    second = subprocess.run(command[:-2], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming: {done} events already sent" in second.stdout
    ids = _event_ids(kafka_config, topics, n=valid)
    assert len(ids) == valid and len(set(ids)) == valid  # every event, each exactly once


def test_backfill_from_parquet_keeps_event_times(
    broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from preflog.schemas.codec import SingleObjectCodec

    rows = [{**inference(event_time="2025-01-02T03:04:05Z"), "event_type": "inference"} for _ in range(20)]
    for row in rows:
        row["event_time"] = datetime.fromisoformat("2025-01-02T03:04:05+00:00")
    path = tmp_path / "history.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = CliRunner().invoke(app, ["produce", str(path)], env=_env(broker, topics))
    assert result.exit_code == 0, result.output
    msgs = read_topic(kafka_config, topics.inference, topics.partitions, expect=20)
    decoded = [SingleObjectCodec().decode(m.value() or b"", "InferenceEvent") for m in msgs]
    assert len(decoded) == 20 and {d["event_time"].year for d in decoded} == {2025}
    assert {d["metadata"]["region"] for d in decoded} == {"eu"}


UNREACHABLE_COMMANDS = [
    ["produce", "{events}"],
    ["generate", "--requests", "5", "--fast"],
    ["tail", "inference"],
    ["topics", "list"],
    ["topics", "create"],
    ["offsets", "show"],
    ["offsets", "reset", "--group", "preflog-sink", "--to-earliest", "--yes"],
    ["replay", "--dry-run"],
    ["process"],
    ["sink"],
]


def _timed_preflog(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python -m preflog ARGS`` and how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "preflog", *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("command", UNREACHABLE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_command_without_a_broker_fails_fast_with_one_line(command: list[str], tmp_path: Path) -> None:
    from preflog.deploy.broker import free_port

    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"event_type": "inference", **inference()}, default=json_default) + "\n")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env["PREFLOG_DATA_DIR"] = str(tmp_path / "data")
    args = [a.format(events=events) for a in command]
    result, elapsed = _timed_preflog(["-b", address, *args], env, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert address in output and "preflog up" in output and "--bootstrap-servers" in output
    assert "Traceback" not in output
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_a_port_that_does_not_speak_kafka_fails_fast_with_one_line(tmp_path: Path) -> None:
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        result, elapsed = _timed_preflog(["-b", address, "topics", "list"], env, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and len(output.splitlines()) == 1, output
    assert f"{address} did not answer" in output
    assert elapsed < 5, f"{elapsed:.1f} s"
