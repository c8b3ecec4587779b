"""`preflog offsets`: show committed offsets and lag; reset only stopped groups, after confirmation."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from preflog.cli import app
from preflog.deploy.broker import EmbeddedBroker
from preflog.kafka.offsets import LiveGroupError, describe
from preflog.settings import TopicSettings

from .test_cli import _env

pytestmark = pytest.mark.integration


def committed(config: dict[str, Any], group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient(config)  # keep the client alive until its future resolves
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def test_show_and_reset_offsets(broker: EmbeddedBroker, topics: TopicSettings, kafka_config: dict[str, Any]) -> None:
    group = f"preflog-sink-{uuid.uuid4().hex[:6]}"
    env = {**_env(broker, topics), "PREFLOG_SINK__GROUP_ID": group}
    producer = Producer(kafka_config)
    for i in range(60):
        producer.produce(topics.pairs, key=str(i).encode(), value=b"x")
    producer.flush()
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": group,
            "session.timeout.ms": 6000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.pairs])
    seen, deadline = 0, time.monotonic() + 30
    while seen < 60 and time.monotonic() < deadline:
        seen += len(consumer.consume(100, 0.5))
    consumer.commit(asynchronous=False)
    runner = CliRunner()

    live = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-earliest", "--yes"], env=env)
    assert isinstance(live.exception, LiveGroupError), live.output
    assert "stop its processes" in str(live.exception)
    asked = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-earliest"], env=env, input="y\n")
    assert isinstance(asked.exception, LiveGroupError) and "Reset" not in asked.output  # refused before asking
    assert sum(committed(kafka_config, group).values()) == 60  # untouched

    consumer.close()
    for _ in range(2):  # two more batches: ListOffsets on the embedded broker would miss the second
        for i in range(20):
            producer.produce(topics.pairs, key=str(i).encode(), value=b"y")
        producer.flush()
    lag = describe(kafka_config, group, [topics.pairs])
    assert sum(row.lag or 0 for row in lag.partitions) == 40
    shown = runner.invoke(app, ["offsets", "show", "--group", group], env=env)
    assert shown.exit_code == 0, shown.output
    assert topics.pairs in shown.output and "end of partition" in shown.output
    assert f"group {group}: idle" in shown.output  # its consumer closed

    declined = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-earliest"], env=env, input="n\n")
    assert declined.exit_code == 1
    assert sum(committed(kafka_config, group).values()) == 60

    explicit = runner.invoke(
        app,
        ["offsets", "reset", "--group", group, "--to-offset", f"{topics.pairs}:0=3", "--topic", topics.pairs, "--yes"],
        env=env,
    )
    assert explicit.exit_code == 0, explicit.output
    assert committed(kafka_config, group)[(topics.pairs, 0)] == 3

    earliest = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-earliest", "--yes"], env=env)
    assert earliest.exit_code == 0, earliest.output
    assert set(committed(kafka_config, group).values()) == {0}

    latest = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-latest", "--yes"], env=env)
    assert latest.exit_code == 0, latest.output
    assert sum(committed(kafka_config, group).values()) == 100  # every record, not ListOffsets' figure

    bad = runner.invoke(app, ["offsets", "reset", "--group", group, "--to-earliest", "--to-latest"], env=env)
    assert bad.exit_code == 2 and "exactly one of" in bad.output
