"""``preflog up``: everything preflog needs on one machine, started and stopped together."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from preflog.settings import Settings, settings_env

from .broker import EmbeddedBroker, free_port
from .topics import ensure_topics

__all__ = ["FlowMonitor", "Stack"]


class FlowMonitor:
    """Counts records per topic by reading every partition (no consumer group, so no rebalance wait)."""

    def __init__(self, kafka_config: dict[str, Any], topics: dict[str, str], partitions: int) -> None:
        self.counts: Counter[str] = Counter()
        self._consumer = Consumer({**kafka_config, "group.id": "preflog-up-monitor", "enable.auto.commit": False})
        self._consumer.assign(
            [TopicPartition(t, p, -2) for t in topics.values() for p in range(partitions)]  # -2: OFFSET_BEGINNING
        )
        self._role = {t: r for r, t in topics.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preflog-monitor", daemon=True)

    def start(self) -> FlowMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.2):
                if msg.error() is None:
                    self.counts[self._role.get(msg.topic() or "", msg.topic() or "")] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


@dataclass
class Service:
    """A preflog subcommand running as a child process, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    where: str

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    """The embedded broker, preflog's topics and the services that use them."""

    settings: Settings
    broker: EmbeddedBroker | None = None
    created: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)

    def start(self) -> Settings:
        """Start the broker, create the topics; returns settings pointing at the broker."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(self.settings.data_dir / "broker").start()
        self.settings = self.settings.model_copy(
            update={
                "kafka": self.settings.kafka.model_copy(update={"bootstrap_servers": self.broker.bootstrap_servers})
            }
        )
        t = self.settings.topics
        self.created = ensure_topics(
            self.settings.kafka.client_config(), t.all().values(), t.partitions, t.replication_factor
        )
        return self.settings

    def start_processor(self, **processor: Any) -> Service:
        """Run ``preflog process`` against the embedded broker.

        The embedded broker keeps its log in memory, so table state left by an
        earlier run refers to data that no longer exists: it is removed first.
        Single-record batches keep the broker's high watermark right, which
        Faust's recovery needs (tests/integration/test_broker_quirks.py).
        """
        state_dir = self.settings.data_dir / "processor"
        shutil.rmtree(state_dir, ignore_errors=True)
        port = free_port()
        p = self.settings.processor.model_copy(
            update={
                "metrics_port": port,
                "session_timeout_s": 6.0,
                "state_dir": state_dir,
                "producer_max_batch_size": 1,
                **processor,
            }
        )
        return self._spawn(
            "processor",
            ["process"],
            self.settings.model_copy(update={"processor": p}),
            f"metrics http://127.0.0.1:{port}/metrics",
        )

    def start_sink(self, **sink: Any) -> Service:
        """Run ``preflog sink`` writing the audit log (default ``<data_dir>/audit``)."""
        port = free_port()
        url = self.settings.audit_url()
        conf = self.settings.sink.model_copy(update={"metrics_port": port, "url": url, **sink})
        settings = self.settings.model_copy(update={"sink": conf})
        return self._spawn("sink", ["sink"], settings, f"{url}  metrics http://127.0.0.1:{port}/metrics")

    def _spawn(self, name: str, args: list[str], settings: Settings, where: str) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
        env.update(settings_env(settings))
        log = self.settings.data_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "preflog", *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        service = Service(name, process, log, where)
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.broker is not None:
            self.broker.stop()

    def wait(self, duration: float) -> None:
        """Block for ``duration`` seconds (0 = until Ctrl-C); returns early if a service dies."""
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        while time.monotonic() < deadline:
            dead = [s for s in self.services if s.process.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited with code {dead[0].process.returncode}; see {dead[0].log}")
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
