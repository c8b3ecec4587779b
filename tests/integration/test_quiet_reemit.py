"""A quiet run (no crash, no restart, no rebalance) writes each pair to the pairs topic exactly once.

Two runs of the processor (two app ids, as the rounds of benchmarks/peer_quix.py) over the same input
write to one pairs topic. Each run's records are counted from where the run before it truly ended. A
reader that instead starts at the end ListOffsets reported before the run counts the previous run's last
produce batch again: the embedded broker reports the base offset of a partition's last batch + 1
(test_broker_quirks.py). Those records repeat pair_ids without the processor having written anything twice;
benchmarks/reemit_check.py found that this was the "9-11 pairs written twice" of quiet rounds 2 and 3.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from preflog.deploy.broker import EmbeddedBroker
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.tables import TABLES
from preflog.settings import TopicSettings

from ..kafka_helpers import read_topic
from .conftest import Worker, processor_env
from .processor_helpers import CODEC, clean_traffic, expected_pairs

pytestmark = [pytest.mark.integration, pytest.mark.heavy]  # 33 s: in the heavy step of .ci/run


def listed_ends(config: dict[str, Any], topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end as ListOffsets reports it (get_watermark_offsets, OFFSET_END, Faust's end_offsets)."""
    consumer = Consumer({**config, "group.id": "quiet-reemit", "log_level": 0})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def pair_id(value: bytes | None) -> str:
    return str(CODEC.decode(value or b"", TABLES["pairs"].record, "")["pair_id"])


def test_quiet_runs_write_each_pair_once(
    broker: EmbeddedBroker, kafka_config: dict[str, Any], topics: TopicSettings, log: PreflogProducer, tmp_path: Path
) -> None:
    events = clean_traffic(800)
    send_traffic(events, log, pace=False)
    expected = expected_pairs(events)  # from the traffic, not from the pipeline
    ends: dict[int, int] = {}  # where the previous run's pairs truly end, by partition
    for run in range(2):
        listed = listed_ends(kafka_config, topics.pairs, topics.partitions)
        env = processor_env(broker, topics, tmp_path / f"state-{run}", store="rocksdb://")  # a fresh app id
        worker = Worker(env, tmp_path / f"worker-{run}.log").start()
        try:
            msgs = read_topic(kafka_config, topics.pairs, topics.partitions, (run + 1) * len(expected), 120, 3)
        finally:
            worker.stop()
        assert worker.proc is not None and worker.proc.returncode == 0, worker.output()[-3000:]
        assert "Revoking previously assigned partitions {" not in worker.output()  # quiet: one assignment only
        rows = [(m.partition() or 0, m.offset() or 0, pair_id(m.value())) for m in msgs]
        ids = Counter(pid for p, offset, pid in rows if offset >= ends.get(p, 0))
        assert set(ids) == expected, (len(expected - set(ids)), len(set(ids) - expected))
        twice = {k: n for k, n in ids.items() if n > 1}
        assert not twice, f"run {run}: {len(twice)} pair_ids written more than once"
        if run:  # a reader from ListOffsets' ends: its repeats are all the previous run's tail
            recount = Counter(pid for p, offset, pid in rows if offset >= listed[p])
            tail = {pid for p, offset, pid in rows if listed[p] <= offset < ends[p]}
            assert all(listed[p] <= ends[p] for p in ends)
            assert {k for k, n in recount.items() if n > 1} == tail, "a repeat that is not the previous run's tail"
            print(f"ListOffsets' ends {listed}, true ends {ends}: {len(tail)} records of the previous run recounted")
        ends = {p: 1 + max([o for q, o, _ in rows if q == p], default=-1) for p in range(topics.partitions)}
