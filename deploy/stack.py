"""``preflog up``: everything preflog needs on one machine, started and stopped together.

Lifecycle guarantees:

* every child (broker, processor, sink) runs in its own session, so a
  terminal's Ctrl-C or hang-up reaches ``preflog up`` alone, which stops them
  in order (services first, so they commit, then the broker);
* every child also dies with ``preflog up`` if it is killed outright: the
  kernel's parent-death signal, and in Python children a watchdog thread that
  exits hard when a clean stop takes too long (:mod:`.lifeline`);
* a service's metrics port is bound by the service itself (:mod:`.service`),
  and a broker whose port was taken first is restarted on another
  (:mod:`.broker`), so several stacks can start on one machine at once.

The embedded broker keeps its log in memory: every ``up`` starts a new, empty
broker (a new *incarnation*, recorded in ``<data-dir>/stack.json`` and
``<data-dir>/incarnations.log``). The audit log under ``<data-dir>/audit``
stays; the sink starts a new file sequence next to the earlier run's files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from preflog.errors import PreflogError
from preflog.kafka.topics import ensure_topics
from preflog.settings import Settings, settings_env

from .broker import EmbeddedBroker
from .runfile import StackRecord, find_running, record_incarnation, remove_record

__all__ = ["RESTART_CODE", "RESTART_LIMIT", "Service", "Stack", "StackRunningError"]

log = logging.getLogger(__name__)
#: a service's exit code for "restart me": the processor abandoned a batch (processors.batch.EXIT_BATCH_ABANDONED)
RESTART_CODE = 70
RESTART_LIMIT = 5  # restarts a minute before up gives up

Urgent = Callable[[], bool]


class StackRunningError(PreflogError):
    """Another ``preflog up`` already runs from this data directory."""


@dataclass
class Service:
    """A preflog subcommand running as a child process, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    where: str
    metrics_file: Path | None = None
    launch: Callable[[], subprocess.Popen[bytes]] | None = None  # starts it again (see Stack.wait)
    restarts: list[float] = field(default_factory=list)  # monotonic times of restarts

    def metrics_url(self, timeout: float = 10.0) -> str | None:
        """The metrics endpoint the service bound, once it has written its port (None if it did not)."""
        if self.metrics_file is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                port = int(self.metrics_file.read_text().strip())
                return f"http://127.0.0.1:{port}/metrics"
            except (OSError, ValueError):
                time.sleep(0.05)
        return None

    def stop(self, timeout: float = 30.0, urgent: Urgent | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, or at once when ``urgent()`` turns true."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline and not (urgent and urgent()):
                time.sleep(0.05)
        if self.process.poll() is None:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the service's whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Stack:
    """The embedded broker, preflog's topics and the services that use them."""

    settings: Settings
    broker: EmbeddedBroker | None = None
    created: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    record: StackRecord | None = None

    def start(self) -> Settings:
        """Start the broker, record it, create the topics; returns settings pointing at the broker.

        Raises :class:`StackRunningError` if a stack already runs from the same data directory.
        """
        data_dir = self.settings.data_dir
        running = find_running(data_dir)
        if running is not None:
            raise StackRunningError(
                f"a preflog up stack already runs from {data_dir.resolve()}: {running.describe()}; "
                f"stop it (kill {running.up_pid}) or use another --data-dir"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(data_dir / "broker")
        self.broker.start()
        assert self.broker.process is not None
        self.record = StackRecord(
            bootstrap_servers=self.broker.bootstrap_servers,
            incarnation=self.broker.incarnation,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            up_pid=os.getpid(),
            broker_pid=self.broker.process.pid,
            data_dir=str(data_dir.resolve()),
        )
        self.record.write(data_dir)
        record_incarnation(data_dir, self.record)
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
        Its changelog recovery reads to the end the fetch path reports, so it
        may batch its produce requests although the embedded broker reports
        high watermarks low (processors/faust_compat.py).
        """
        state_dir = self.settings.data_dir / "processor"
        shutil.rmtree(state_dir, ignore_errors=True)
        p = self.settings.processor.model_copy(
            update={
                "metrics_port": 0,  # the service binds its own port (deploy/service.py)
                "session_timeout_s": 6.0,
                "state_dir": state_dir,
                "recovery_consistency_check": False,  # the embedded broker reports high watermarks low
                "fetch_max_wait_ms": 100,  # the embedded broker answers a fetch only when its wait is over
                **processor,
            }
        )
        return self._spawn("processor", ["process"], self.settings.model_copy(update={"processor": p}), "")

    def start_sink(self, **sink: Any) -> Service:
        """Run ``preflog sink`` writing the audit log (default ``<data_dir>/audit``)."""
        url = self.settings.audit_url()
        conf = self.settings.sink.model_copy(update={"metrics_port": 0, "url": url, **sink})
        settings = self.settings.model_copy(update={"sink": conf})
        return self._spawn("sink", ["sink"], settings, url)

    def _spawn(self, name: str, args: list[str], settings: Settings, where: str) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
        env.update(settings_env(settings))
        log = self.settings.data_dir / f"{name}.log"
        metrics_file = self.settings.data_dir / f"{name}.metrics-port"
        metrics_file.unlink(missing_ok=True)
        launcher = [sys.executable, "-m", "preflog.deploy.service", "--parent", str(os.getpid())]
        launcher += ["--metrics-file", str(metrics_file), "--", *args]

        def launch() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(launcher, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        service = Service(name, launch(), log, where, metrics_file, launch)
        self.services.append(service)
        self._record_pid(service)
        return service

    def _record_pid(self, service: Service) -> None:
        if self.record is not None:
            self.record.services[service.name] = service.process.pid
            self.record.write(self.settings.data_dir)

    def _restart(self, service: Service) -> bool:
        """Start a service again after it abandoned a batch (exit 70); False past RESTART_LIMIT a minute."""
        now = time.monotonic()
        service.restarts = [t for t in service.restarts if now - t < 60.0]
        if service.launch is None or len(service.restarts) >= RESTART_LIMIT:
            return False
        service.restarts.append(now)
        code = service.process.returncode
        log.warning(
            "%s exited with code %d (a batch failed; nothing of it was committed): restarting it", service.name, code
        )
        service.process = service.launch()
        self._record_pid(service)
        return True

    def publish_metrics(self, timeout: float = 10.0) -> None:
        """Wait for each service's metrics port, show it in ``where`` and in stack.json."""
        for service in self.services:
            url = service.metrics_url(timeout)
            if url is not None:
                service.where = f"{service.where}  metrics {url}".strip()
                if self.record is not None:
                    self.record.metrics[service.name] = url
        if self.record is not None:
            self.record.write(self.settings.data_dir)

    def stop(self, urgent: Urgent | None = None, drain_s: float = 30.0) -> None:
        """Stop the API, the processor, let the sink write what it sent, stop it, then the broker; remove stack.json.

        The embedded broker's log dies with it: whatever the sink has not written by then is gone, so the sink
        is stopped only once it has committed the end of every output partition (at most ``drain_s``; it says
        what it left behind). ``urgent()`` turning true (a second Ctrl-C) kills what is still running instead.
        """
        try:
            for service in sorted((s for s in self.services if s.name != "sink"), key=lambda s: s.name != "api"):
                service.stop(urgent=urgent)
            sink = next((s for s in self.services if s.name == "sink"), None)
            if sink is not None:
                if sink.process.poll() is None and not (urgent and urgent()):
                    self._drain(sink, drain_s, urgent)
                sink.stop(urgent=urgent)
        finally:
            if self.broker is not None:
                self.broker.stop(timeout=0.0 if urgent and urgent() else 10.0)
            if self.record is not None:
                remove_record(self.settings.data_dir, self.record.incarnation)

    def _drain(self, sink: Service, timeout: float, urgent: Urgent | None) -> None:
        """Wait until the sink has committed the end of every output partition (its files are written first)."""
        from preflog.kafka.offsets import describe

        t = self.settings.topics
        outputs = list(t.outputs().values())
        config = {**self.settings.kafka.client_config(), "log_level": 0}
        deadline = time.monotonic() + timeout
        behind: list[str] = []
        while time.monotonic() < deadline and not (urgent and urgent()) and sink.process.poll() is None:
            try:
                group = describe(config, self.settings.sink.group_id, outputs)
            except Exception as exc:  # the broker is ours and up; say so rather than hang
                behind = [f"could not read the sink's offsets: {exc}"]
                break
            behind = [
                f"{p.topic}[{p.partition}]: {p.lag}"
                for p in group.partitions
                if (p.lag or 0) > 0 or (p.committed is None and p.end > 0)
            ]
            if not behind:
                return
            time.sleep(0.5)
        if behind:
            log.warning("stopping the sink before it wrote everything (records behind: %s)", ", ".join(behind))

    def pids(self) -> dict[str, int]:
        """Every child process by name (broker first)."""
        pids = {}
        if self.broker is not None and self.broker.process is not None:
            pids["broker"] = self.broker.process.pid
        pids.update({s.name: s.process.pid for s in self.services})
        return pids

    def wait(self, duration: float, on_tick: Callable[[], None] | None = None, tick: float = 1.0) -> None:
        """Block for ``duration`` seconds (0 = until interrupted), calling ``on_tick`` every ``tick`` seconds.

        A service that exits with :data:`RESTART_CODE` (the processor abandoned a batch: nothing of it was
        acknowledged, so it resumes from its committed offsets) is started again, up to
        :data:`RESTART_LIMIT` times a minute. Raises :class:`PreflogError` early if a service dies otherwise.
        """
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        next_tick = time.monotonic()
        while time.monotonic() < deadline:
            for s in self.services:
                code = s.process.poll()
                if code is None or (code == RESTART_CODE and self._restart(s)):
                    continue
                again = " (again and again: see its log)" if code == RESTART_CODE else ""
                raise PreflogError(f"{s.name} exited with code {code}{again}; see {s.log}")
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick()
                next_tick += tick
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
