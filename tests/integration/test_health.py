"""/healthz and /readyz of the real services: not ready while recovering, ready after, not live once dead."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.kafka import lag
from preflog.processors.pairs import pair_id
from preflog.producers import PreflogProducer
from preflog.settings import TopicSettings

from ..conftest import feedback, inference
from .conftest import StartProcessor, processor_env
from .processor_helpers import outputs
from .sink_helpers import produce_pairs, wait_rows
from .test_batch_faults import FaultWorker

pytestmark = pytest.mark.integration


def probe(port: int, path: str) -> tuple[int, str]:
    """(HTTP status, reason); (0, error class) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.load(answer)["reason"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)["reason"]
    except OSError as exc:
        return 0, type(exc).__name__


def watch(port: int, path: str, until: int, timeout: float = 90) -> list[tuple[int, str]]:
    """Every distinct answer of ``path``, polled every 20 ms until it answers ``until``."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe(port, path)
        if not seen or seen[-1] != answer:
            seen.append(answer)
        if answer[0] == until:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{path} never answered {until}: {seen}")


@pytest.mark.heavy  # 40 s: run by .ci/run's heavy step, with the drain test (the README's suite stays short)
def test_processor_is_not_ready_while_recovering_and_ready_after(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    waiting = [inference() for _ in range(4000)]  # open inferences: 4000 changelog records to recover
    for event in waiting:
        log.log_inference(event)
    assert log.flush() == 0
    port = free_port()
    first = start_processor(metrics_port=port)
    watch(port, "/readyz", until=200)
    time.sleep(8)  # the worker joins what was sent: its changelog fills
    first.stop()

    # memory:// keeps no state on disk: the restarted worker recovers all of it from the changelog
    second = start_processor(reuse_state_of=0, metrics_port=port)
    seen = watch(port, "/readyz", until=200)
    live = probe(port, "/healthz")
    print("readiness while the worker restarted:", seen)
    # "recovering" is said only while Faust is in recovery (before the first assignment it says "waiting")
    assert any(code == 503 and reason.startswith("recovering state from the changelog") for code, reason in seen), seen
    assert (503, "waiting for its first partition assignment") in seen, seen
    assert seen[-1][1] == f"owns partitions {list(range(topics.partitions))} of {topics.inference}", seen
    assert live == (200, "event loop and consumer running")
    assert second.proc is not None and second.proc.poll() is None

    # what it recovered is the state: feedback on inferences sent before the restart joins them
    judged = waiting[:40]
    expected = set()
    for event in judged:
        fb = feedback(event["request_id"])
        log.log_feedback(fb)
        expected.add(pair_id(fb["feedback_id"], 0, 1))
    assert log.flush() == 0
    pairs = outputs(kafka_config, topics, "pairs", expect=len(expected), ids=expected, timeout=60)
    assert {p["pair_id"] for p in pairs} == expected


@pytest.mark.heavy
def test_processor_is_not_live_once_its_consumer_dies(
    broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path
) -> None:
    port = free_port()
    trigger = tmp_path / "kill-consumer"
    env = processor_env(broker, topics, tmp_path / "state", app_id=f"preflog-test-{uuid.uuid4().hex[:8]}")
    env.update(PREFLOG_PROCESSOR__METRICS_PORT=str(port), PREFLOG_TEST_KILL_CONSUMER=str(trigger))
    worker = FaultWorker(env, tmp_path / "worker.log").start()
    try:
        watch(port, "/readyz", until=200)
        assert probe(port, "/healthz") == (200, "event loop and consumer running")
        trigger.touch()
        seen = watch(port, "/healthz", until=503, timeout=30)
        assert seen[-1] == (503, "the Kafka consumer thread crashed"), seen
        assert worker.proc is not None and worker.proc.poll() is None  # the process lives on: only a probe tells
        assert probe(port, "/readyz") == (503, "the Kafka consumer thread crashed")
    finally:
        worker.kill()


def test_sink_is_ready_when_it_owns_partitions_and_storage_answers(
    broker: EmbeddedBroker, start_sink: Any, tmp_path: Path
) -> None:
    port = free_port()
    audit = tmp_path / "audit"
    audit.mkdir()
    sink = start_sink(audit.as_uri(), metrics_port=port)
    seen = watch(port, "/readyz", until=200, timeout=60)
    assert seen[-1][1].startswith("owns ") and seen[-1][1].endswith(f"{audit.as_uri()} answers"), seen
    assert probe(port, "/healthz") == (200, "the consume loop is turning")

    shutil.rmtree(audit)
    audit.write_bytes(b"")  # the volume is gone and a file stands where the log's root was
    seen = watch(port, "/readyz", until=503, timeout=30)
    assert seen[-1] == (503, f"{audit} is not a directory"), seen
    assert probe(port, "/healthz")[0] == 200  # storage trouble is not a reason to restart the sink

    os.remove(audit)
    audit.mkdir()
    watch(port, "/readyz", until=200, timeout=30)
    sink.stop()
    assert sink.proc is not None and sink.proc.returncode == 0


def test_lag_counts_what_the_sink_group_has_not_committed(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path
) -> None:
    group = f"preflog-sink-lag-{uuid.uuid4().hex[:8]}"
    produce_pairs(kafka_config, topics.pairs, 120)
    before = lag.measure(kafka_config, group, [topics.pairs])
    assert sum(before.values()) == 120 and len(before) == topics.partitions  # nothing committed: every record
    scraped = [
        REGISTRY.get_sample_value("preflog_consumer_lag", {"group": group, "topic": topics.pairs, "partition": str(p)})
        for p in range(topics.partitions)
    ]
    assert sum(value or 0 for value in scraped) == 120

    url = (tmp_path / "audit").as_uri()
    sink = start_sink(url, group_id=group)
    wait_rows(url, 120)
    deadline = time.monotonic() + 30
    while sum(lag.measure(kafka_config, group, [topics.pairs]).values()) and time.monotonic() < deadline:
        time.sleep(0.5)  # the commit follows the file
    assert sum(lag.measure(kafka_config, group, [topics.pairs]).values()) == 0
    sink.stop()
