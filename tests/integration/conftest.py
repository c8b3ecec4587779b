"""Processor workers as real subprocesses against the embedded broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings
from tests import service_env


class Worker:
    """One preflog service subprocess (``preflog process`` unless ``args`` says otherwise)."""

    def __init__(
        self, env: dict[str, str], log: Path, args: tuple[str, ...] = ("process", "--loglevel", "info")
    ) -> None:
        self.env, self.log, self.args = env, log, args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "preflog", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


StartProcessor = Callable[..., Worker]


#: the processor settings of the integration tests, over tests.service_env.PROCESSOR_DEFAULTS
TEST_PROCESSOR = {"window_s": 600, "grace_s": 60, "idle_timeout_s": 600, "tick_interval_s": 0.5, "store": "memory://"}


def processor_env(broker: EmbeddedBroker, topics: TopicSettings, state_dir: Path, **processor: Any) -> dict[str, str]:
    """The environment of a test worker: :data:`TEST_PROCESSOR` with ``processor`` on top."""
    return service_env.processor_env(
        broker.bootstrap_servers, topics.all(), state_dir, **{**TEST_PROCESSOR, **processor}
    )


@pytest.fixture
def start_processor(broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path) -> Iterator[StartProcessor]:
    """Start workers of one processor app (shared app id, so they form one group)."""
    workers: list[Worker] = []
    app_id = f"preflog-test-{uuid.uuid4().hex[:8]}"

    def start(reuse_state_of: int | None = None, **processor: Any) -> Worker:
        """Start a worker; ``reuse_state_of=N`` gives it worker N's state directory (a restart in place)."""
        n = len(workers)
        state = tmp_path / f"state-{n if reuse_state_of is None else reuse_state_of}"
        env = processor_env(broker, topics, state, app_id=app_id, **processor)
        worker = Worker(env, tmp_path / f"worker-{n}.log").start()
        workers.append(worker)
        return worker

    yield start
    for w in workers:
        w.stop()


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def start_sink(broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path) -> Iterator[Any]:
    sinks: list[Worker] = []
    group = f"preflog-sink-test-{uuid.uuid4().hex[:8]}"

    def start(url: str, **sink: Any) -> Worker:
        settings = {"url": url, "group_id": group, "idle_flush_s": 1, **sink}
        env = service_env.sink_env(broker.bootstrap_servers, topics.all(), **settings)
        process = Worker(env, tmp_path / f"sink-{len(sinks)}.log", ("sink",)).start()
        sinks.append(process)
        return process

    yield start
    for s in sinks:
        s.stop()


@pytest.fixture
def log(kafka_config: dict[str, Any], topics: TopicSettings) -> Iterator[PreflogProducer]:
    """A producer SDK client on the test topics (single-object framing)."""
    with PreflogProducer(kafka_config, SingleObjectCodec(), topics) as producer:
        yield producer


@pytest.fixture
def start_api(broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path) -> Iterator[Any]:
    """Start ``preflog serve`` services on the test topics (``api_helpers.Api``); stopped after the test."""
    from .api_helpers import start_api as start

    services: list[Any] = []

    def run(data_dir: Path | None = None, **api: Any) -> Any:
        n = len(services)
        where = data_dir or tmp_path / f"api-{n}"
        service = start(broker.bootstrap_servers, topics.all(), where, tmp_path / f"api-{n}.log", **api)
        services.append(service)
        return service

    yield run
    for s in services:
        s.worker.stop()
