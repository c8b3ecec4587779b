"""The health server and the sink's verdicts, without a broker (the services' own: tests/integration/test_health.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from preflog.deploy.health import Health, Verdict, serve
from preflog.processors import health as processor_health
from preflog.sinks.health import SinkHealth
from preflog.sinks.storage import Storage


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_server_answers_probes_and_metrics_on_one_port() -> None:
    health = Health()
    server, port = serve("127.0.0.1", 0, health)
    try:
        assert get(port, "/healthz") == (200, b'{"status": "ok", "reason": "starting"}')
        assert get(port, "/readyz") == (503, b'{"status": "fail", "reason": "starting"}')
        status, body = get(port, "/metrics")
        assert status == 200 and b"# TYPE" in body

        health.install(lambda: Verdict(True, "turning"), lambda: Verdict(True, "owns 3"))
        assert json.loads(get(port, "/readyz")[1]) == {"status": "ok", "reason": "owns 3"}

        health.install(lambda: Verdict(False, "stuck"), lambda: Verdict(True, "owns 3"))
        assert get(port, "/readyz") == (503, b'{"status": "fail", "reason": "stuck"}')  # not live: not ready

        def broken() -> Verdict:
            raise KeyError("a secret")

        health.install(broken, broken)
        status, body = get(port, "/healthz")
        assert status == 503 and json.loads(body)["reason"] == "health check raised KeyError"
        assert b"secret" not in body
    finally:
        server.shutdown()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStorage(Storage):
    def __init__(self, root: Path) -> None:
        super().__init__(root.as_uri())
        self.checks = 0

    def problem(self) -> str | None:
        self.checks += 1
        return super().problem()


def test_sink_verdicts(tmp_path: Path) -> None:
    clock = Clock()
    storage = CountingStorage(tmp_path)
    health = SinkHealth(storage, stall_s=60, storage_check_s=10, clock=clock)
    assert health.ready() == Verdict(False, "owns no partition (joining the group, or more sinks than partitions)")
    health.turn(owned=4)
    assert health.ready() == Verdict(True, f"owns 4 partitions; {tmp_path.as_uri()} answers")
    health.ready()
    assert storage.checks == 1  # at most every storage_check_s
    clock.now += 10
    health.ready()
    assert storage.checks == 2

    health.write_problem = "writing t[0] fails; retrying (offsets uncommitted)"
    assert health.ready() == Verdict(False, "writing t[0] fails; retrying (offsets uncommitted)")
    assert health.live().ok  # a storage outage is no reason to restart

    health.turn(owned=4)
    clock.now += 60
    assert health.live().ok
    clock.now += 1
    assert health.live() == Verdict(False, "the consume loop has not turned for 61 s (limit 60 s)")

    # a long step with limits of its own (resuming through a storage outage retries for minutes) stays live
    health.busy("resuming 20 partitions from the files")
    clock.now += 300
    assert health.live() == Verdict(True, "resuming 20 partitions from the files for 300 s")
    clock.now += 601
    assert health.live() == Verdict(False, "resuming 20 partitions from the files for 901 s (limit 900 s)")
    health.turn(owned=4)  # the next turn ends the step: the loop's own limit again
    clock.now += 61
    assert not health.live().ok


def test_storage_problem_names_the_path(tmp_path: Path) -> None:
    assert Storage((tmp_path / "not" / "yet").as_uri()).problem() is None  # created on the first write
    (tmp_path / "file").write_bytes(b"")
    assert Storage((tmp_path / "file" / "audit").as_uri()).problem() == f"{tmp_path / 'file'} is not a directory"


class DeadThread:
    crashed = False
    should_stop = False

    def __init__(self, alive: bool) -> None:
        self._thread = type("T", (), {"is_alive": lambda _: alive})()


class App:
    should_stop = False

    def __init__(self, thread: object, fetcher_crashed: bool = False) -> None:
        self.consumer = type("C", (), {"_thread": thread})()
        self._fetcher = type("F", (), {"crashed": fetcher_crashed})()


@pytest.mark.parametrize(
    ("app", "problem"),
    [
        (App(DeadThread(alive=True)), None),
        (App(DeadThread(alive=False)), "the Kafka consumer thread has ended"),
        (App(DeadThread(alive=True), fetcher_crashed=True), "Faust's fetcher crashed"),
    ],
)
def test_consumer_problem(app: App, problem: str | None) -> None:
    assert processor_health.consumer_problem(app) == problem


def test_faust_keeps_its_consumer_thread_where_the_check_reads_it() -> None:
    from faust.transport.consumer import ThreadDelegateConsumer
    from mode.threads import ServiceThread

    assert ThreadDelegateConsumer.__annotations__["_thread"].__name__ == "ConsumerThread"
    assert "_thread" in ServiceThread.__annotations__  # the OS thread, whose is_alive() the check reads
