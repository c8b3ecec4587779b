"""SIGTERM (what a scheduler sends) to the processor and the sink mid-stream: each exits 0, nothing lost or doubled."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import preflog
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.settings import TopicSettings

from ..kafka_helpers import read_topic
from .conftest import StartProcessor, Worker
from .processor_helpers import clean_traffic, expected_pairs
from .sink_helpers import wait_rows

pytestmark = [pytest.mark.integration, pytest.mark.heavy]  # 45 s: .ci/run's heavy step runs it


def stop(worker: Worker) -> float:
    """SIGTERM, then the seconds until the process exited (it must exit 0)."""
    assert worker.proc is not None
    began = time.monotonic()
    worker.stop()
    took = time.monotonic() - began
    assert worker.proc.returncode == 0, worker.output()[-3000:]
    return took


def test_sigterm_mid_stream_drains_the_processor_and_the_sink(
    log: PreflogProducer,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
    start_sink: Any,
    tmp_path: Path,
) -> None:
    events = clean_traffic(600)  # 50 requests/s: the traffic goes on while both services stop and start again
    expected = expected_pairs(events)  # computed from the traffic, not by the pipeline
    sender = threading.Thread(target=send_traffic, args=(events, log), daemon=True)
    sender.start()
    url = (tmp_path / "audit").as_uri()
    processor = start_processor(store="rocksdb://")
    sink = start_sink(url, max_rows=50)
    read_topic(kafka_config, topics.pairs, topics.partitions, expect=len(expected) // 4, settle=0)
    processor_s, sink_s = stop(processor), stop(sink)  # mid-stream: pairs still to join and to write
    print(f"SIGTERM to exit: processor {processor_s:.1f} s, sink {sink_s:.1f} s")
    written = preflog.read_pairs(url).num_rows
    assert 0 < written < len(expected)  # the stop came in the middle

    start_processor(reuse_state_of=0, store="rocksdb://")
    start_sink(url, max_rows=50)
    sender.join()
    rows = wait_rows(url, len(expected), timeout=120).num_rows
    time.sleep(3)  # a duplicate would come after the last new row
    ids = Counter(preflog.read_pairs(url).column("pair_id").to_pylist())
    assert set(ids) == expected, (len(expected - set(ids)), len(set(ids) - expected))
    assert max(ids.values()) == 1 and rows == len(expected)
