"""Shared start/stop code of the processor benchmarks (``scaleout``, ``latency``, ``state_memory``).

A benchmark starts the embedded broker with preflog's topics, runs
``preflog process`` / ``preflog sink`` as child processes through the same
launcher ``preflog up`` uses (``python -m preflog.deploy.service``: each child
binds its own metrics port and dies with this process), feeds them with a fast
confluent-kafka producer and watches their Prometheus metrics and the output
topics. Every child is stopped in ``finally`` (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from preflog.deploy.broker import EmbeddedBroker
from preflog.deploy.stack import Stack
from preflog.kafka.config import consumer_config, producer_config
from preflog.kafka.topics import ensure_topics
from preflog.producers.generator import GeneratedEvent
from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record
from preflog.settings import ProcessorSettings, Settings, TopicSettings, load_settings, settings_env

__all__ = [
    "Message",
    "Service",
    "TopicWatcher",
    "broker_with_topics",
    "encode_events",
    "fast_produce",
    "percentile",
    "service_settings",
    "stack_processor",
    "wait_for",
]

Message = tuple[str, str, bytes]  # topic, key, value


class _Captured(Exception):
    pass


@functools.cache
def stack_processor() -> dict[str, Any]:
    """The processor settings ``preflog up`` changes from the defaults (read from ``Stack.start_processor`` itself).

    The stack tunes the worker for the embedded broker (session timeout, recovery check, produce batch size);
    asking it, rather than copying its values, keeps these benchmarks on whatever it runs today.
    """
    seen: list[Settings] = []

    class Capture(Stack):
        def _spawn(self, name: str, args: list[str], settings: Settings, where: str) -> Any:
            seen.append(settings)
            raise _Captured

    with tempfile.TemporaryDirectory() as data_dir, contextlib.suppress(_Captured):
        Capture(load_settings({"data_dir": data_dir})).start_processor()
    got, default = seen[0].processor, ProcessorSettings()
    return {
        name: getattr(got, name)
        for name in ProcessorSettings.model_fields
        if name not in ("state_dir", "metrics_port") and getattr(got, name) != getattr(default, name)
    }


@contextlib.contextmanager
def broker_with_topics(work: Path, partitions: int = 4) -> Iterator[tuple[str, TopicSettings]]:
    """An embedded broker with every preflog topic created with ``partitions`` partitions; stopped on exit."""
    topics = TopicSettings(partitions=partitions)
    with EmbeddedBroker(work / "broker") as broker:
        ensure_topics({"bootstrap.servers": broker.bootstrap_servers}, topics.all().values(), partitions)
        yield broker.bootstrap_servers, topics


def service_settings(
    bootstrap: str, topics: TopicSettings, work: Path, processor: dict[str, Any] | None = None, **sink: Any
) -> Settings:
    """Settings of a child service: the stack's processor settings, ``processor`` and ``sink`` on top."""
    return load_settings(
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "topics": topics.model_dump(),
            "data_dir": str(work),
            "processor": {**stack_processor(), "metrics_port": 0, **(processor or {})},
            "sink": {"metrics_port": 0, **sink},
        }
    )


class Service:
    """``preflog <command>`` in a child process with its own metrics port, log file and process group."""

    def __init__(self, command: str, settings: Settings, work: Path, name: str) -> None:
        self.command, self.name = command, name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")} | settings_env(settings)
        self.log = work / f"{name}.log"
        self.port_file = work / f"{name}.metrics-port"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Service:
        """Launch the command (a restart after :meth:`kill9` runs it again with the same settings)."""
        self.port_file.unlink(missing_ok=True)
        self.port = 0
        launcher = [sys.executable, "-m", "preflog.deploy.service", "--parent", str(os.getpid())]
        launcher += ["--metrics-file", str(self.port_file), "--", self.command]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                launcher, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_port(self, timeout: float = 60.0) -> int:
        """The metrics port the child bound (raises if it exits or does not bind one in time)."""
        deadline = time.monotonic() + timeout
        while not self.port:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} bound no metrics port in {timeout:.0f} s; see {self.log}")
            with contextlib.suppress(OSError, ValueError):
                self.port = int(self.port_file.read_text().strip())
            time.sleep(0.05)
        return self.port

    def metric(self, name: str) -> float:
        """Sum of every sample of ``name`` (all labels); 0 when the endpoint does not answer."""
        if not self.port:
            return 0.0
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
        except OSError:
            return 0.0
        return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(name))

    def rss_mb(self) -> float:
        """Resident set size of the child in MB (VmRSS from /proc; the launcher runs the command in-process)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the child has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        """SIGKILL to the child's process group, and wait for it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill9()


def encode_events(events: Iterable[GeneratedEvent], codec: Codec, topics: TopicSettings) -> list[Message]:
    """Generated inference and feedback events as validated, encoded records (invalid ones are left out)."""
    out: list[Message] = []
    for e in events:
        if e.record is None or e.invalid_reason:
            continue
        if e.event_type == "inference":
            record, topic = inference_record(e.record), topics.inference
            out.append((topic, e.key, codec.encode("InferenceEvent", record, topic)))
        else:
            record, topic = feedback_record(e.record), topics.feedback
            out.append((topic, e.key, codec.encode("FeedbackEvent", record, topic)))
    return out


def fast_produce(
    bootstrap: str, messages: Iterable[Message], on_partition: Callable[[int, int], None] | None = None, track: int = 0
) -> int:
    """Send ``messages`` as fast as the client goes (idempotent, 20 ms linger, large batches); returns the count.

    ``on_partition(i, partition)`` is called with the partition of each of the first ``track`` messages.
    """
    conf = producer_config({"bootstrap.servers": bootstrap}, linger_ms=20, quiet=True)
    conf.update({"batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000})
    producer = Producer(conf)
    failed: list[str] = []

    def report(i: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(str(err))
            elif on_partition is not None and i < track:
                on_partition(i, msg.partition())

        return done

    plain = report(track)
    n = 0
    for n, (topic, key, value) in enumerate(messages, 1):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report(n - 1) if n <= track else plain)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"{left} records undelivered, {len(failed)} failed ({failed[:3]})")
    return n


class TopicWatcher(threading.Thread):
    """Reads every partition of a topic from its beginning (no group).

    Calls ``on_record(value, seen_at, record_time)`` for each record: when it was read and its Kafka timestamp
    (the producer's create time), both in seconds since the epoch.
    """

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, on_record: Callable[[bytes, float, float], None]
    ) -> None:
        super().__init__(name=f"watch-{topic}", daemon=True)
        self.bootstrap, self.topic, self.partitions, self.on_record = bootstrap, topic, partitions, on_record
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        """Consume until :meth:`stop`."""
        conf = consumer_config(
            {"bootstrap.servers": self.bootstrap}, "preflog-bench-watch", quiet=True, extra={"fetch.wait.max.ms": 10}
        )
        consumer = Consumer(conf)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        self.ready.set()
        try:
            while not self.stopping.is_set():
                batch = consumer.consume(1000, 0.1)
                seen_at = time.time()
                for m in batch:
                    value = m.value()
                    if m.error() is None and value is not None:
                        self.on_record(value, seen_at, m.timestamp()[1] / 1000)
        finally:
            consumer.close()

    def stop(self) -> None:
        """Stop consuming and wait for the thread."""
        self.stopping.set()
        self.join(10)


def wait_for(done: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Poll ``done()`` until true; returns the ``time.time()`` it became true. Raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.time()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]
