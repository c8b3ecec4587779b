"""A crash never commits what was not done; records Faust never delivered are read without waiting.

Workers run as subprocesses with a fault injected (tests/integration/fault_worker.py)
against the embedded broker; the restarted worker is a plain ``preflog process``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from preflog.deploy.broker import EmbeddedBroker
from preflog.processors.pairs import expand, pair_id
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.settings import TopicSettings

from ..kafka_helpers import read_topic
from .conftest import Worker, processor_env
from .processor_helpers import CODEC, clean_traffic, expected_pairs, outputs

pytestmark = pytest.mark.integration
FAULT_WORKER = Path(__file__).with_name("fault_worker.py")


class FaultWorker(Worker):
    """A worker started through fault_worker.py."""

    def start(self) -> FaultWorker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(FAULT_WORKER)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


@pytest.fixture
def workers() -> Any:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def committed(config: dict[str, Any], group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset of each partition (0 when none)."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: max(tp.offset, 0) for tp in tps}
    finally:
        consumer.close()


def pairs_by_source(config: dict[str, Any], topics: TopicSettings, n_inf: int, n_fb: int) -> dict[str, Any]:
    """pair_id -> (partition, inference offset, feedback offset), from the input topics as written."""
    inferences: dict[str, tuple[int, int]] = {}
    for m in read_topic(config, topics.inference, topics.partitions, n_inf, settle=0):
        rid = CODEC.decode(m.value() or b"", "InferenceEvent")["request_id"]
        inferences.setdefault(rid, (m.partition() or 0, m.offset() or 0))
    out: dict[str, Any] = {}
    for m in read_topic(config, topics.feedback, topics.partitions, n_fb, settle=0):
        fb = CODEC.decode(m.value() or b"", "FeedbackEvent")
        if fb["request_id"] not in inferences:
            continue
        for p in expand(fb):
            out.setdefault(pair_id(fb["feedback_id"], p.chosen, p.rejected), (inferences[fb["request_id"]], m))
    return {pid: (inf[0], inf[1], m.offset() or 0) for pid, (inf, m) in out.items()}


@pytest.mark.heavy  # 4 x 33 s: .ci/run's heavy step runs them
@pytest.mark.parametrize("step", ["deliver", "state", "state-mid", "gaps"])
def test_a_batch_failing_at_any_step_is_never_committed_and_is_joined_after_the_restart(
    step: str,
    log: PreflogProducer,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    broker: EmbeddedBroker,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    events = clean_traffic(300)
    expected = expected_pairs(events)
    half = len(events) // 2
    send_traffic(events[:half], log, pace=False)
    app_id = f"preflog-fault-{uuid.uuid4().hex[:8]}"
    env = processor_env(broker, topics, tmp_path / "state", app_id=app_id)
    trigger = tmp_path / "trigger"
    env.update(PREFLOG_TEST_FAIL_AT=step, PREFLOG_TEST_TRIGGER=str(trigger))
    worker = FaultWorker(env, tmp_path / "fault.log").start()
    workers.append(worker)
    outputs(kafka_config, topics, "pairs", expect=0, timeout=60, settle=0, ids=expected_pairs(events[:half]))
    time.sleep(4)  # Faust commits every 2.8 s: the first half is committed
    trigger.touch()
    send_traffic(events[half:], log, pace=False)
    assert worker.proc is not None
    try:
        code: int | None = worker.proc.wait(45)
    except subprocess.TimeoutExpired:  # the process went on after the failure
        code = None
        worker.kill()

    # committed offsets never pass a record whose outputs were not delivered
    sent = {p["pair_id"] for p in outputs(kafka_config, topics, "pairs", expect=10**6, timeout=4, settle=0)}
    n_inf = sum(e.event_type == "inference" for e in events)
    sources = pairs_by_source(kafka_config, topics, n_inf, len(events) - n_inf)
    done_inf = committed(kafka_config, app_id, topics.inference, topics.partitions)
    done_fb = committed(kafka_config, app_id, topics.feedback, topics.partitions)
    done = {pid for pid, (p, i, f) in sources.items() if i < done_inf[p] and f < done_fb[p]}
    assert done, "nothing was committed before the failure: the check would prove nothing"
    assert done - sent == set(), f"committed but never delivered: {len(done - sent)} pair(s) after a {step} failure"
    assert code == 70 and "batch abandoned" in worker.output(), worker.output()[-3000:]
    assert "injected failure" in worker.output()

    port_free_env = processor_env(broker, topics, tmp_path / "state", app_id=app_id)
    workers.append(Worker(port_free_env, tmp_path / "restart.log").start())
    pairs = outputs(kafka_config, topics, "pairs", expect=0, timeout=90, settle=3, ids=expected)
    assert {p["pair_id"] for p in pairs} == expected  # every pair, none invented; copies share their pair_id


def test_records_after_a_skipped_tail_are_read_without_waiting_for_a_later_record(
    log: PreflogProducer,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    broker: EmbeddedBroker,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    events = clean_traffic(200)
    expected = expected_pairs(events)
    send_traffic(events, log, pace=False)
    env = processor_env(broker, topics, tmp_path / "state", app_id=f"preflog-tail-{uuid.uuid4().hex[:8]}")
    env["PREFLOG_TEST_DROP"] = f"{topics.feedback}:5"  # every feedback partition loses its tail from offset 5
    worker = FaultWorker(env, tmp_path / "tail.log").start()
    workers.append(worker)
    pairs = outputs(kafka_config, topics, "pairs", expect=0, timeout=60, settle=2, ids=expected)
    got = {p["pair_id"] for p in pairs}
    assert len(expected - got) == 0, f"{len(expected - got)} of {len(expected)} pairs missing"
    assert got == expected
    assert "not delivered; read them directly" in worker.output()
