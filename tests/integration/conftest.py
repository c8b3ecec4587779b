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
from preflog.settings import TopicSettings


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


def processor_env(broker: EmbeddedBroker, topics: TopicSettings, state_dir: Path, **processor: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env["PREFLOG_KAFKA__BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    env.update({f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()})
    settings = {
        "window_s": 600,
        "grace_s": 60,
        "idle_timeout_s": 600,
        "tick_interval_s": 0.5,
        "store": "memory://",
        "session_timeout_s": 6,
        "metrics_port": 0,
        "producer_max_batch_size": 1,
        "recovery_consistency_check": False,  # the embedded broker reports high watermarks low
        "state_dir": str(state_dir),
        **processor,
    }
    env.update({f"PREFLOG_PROCESSOR__{k.upper()}": str(v) for k, v in settings.items()})
    return env


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
        env["PREFLOG_KAFKA__BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        env.update({f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()})
        env["PREFLOG_PROCESSOR__SESSION_TIMEOUT_S"] = "6"
        settings = {"url": url, "group_id": group, "idle_flush_s": 1, "metrics_port": 0, **sink}
        env.update({f"PREFLOG_SINK__{k.upper()}": str(v) for k, v in settings.items()})
        process = Worker(env, tmp_path / f"sink-{len(sinks)}.log", ("sink",)).start()
        sinks.append(process)
        return process

    yield start
    for s in sinks:
        s.stop()
