"""`preflog up` as a real process: what it starts never outlives it, however it is stopped.

Every test kills whatever it started (by pid, and the process group of `up`) when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from preflog.deploy import broker as broker_module

pytestmark = pytest.mark.integration

CHILDREN = ("broker", "processor", "sink")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not), read from /proc as the tests trust nothing of preflog's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children_of(pid: int) -> dict[str, int]:
    """The broker, processor and sink started under process ``pid`` (at any depth), by role, from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, list[bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
    found = {}
    for child, args in commands.items():
        ancestor = parents.get(child, 0)
        while ancestor not in (0, 1, pid):
            ancestor = parents.get(ancestor, 0)
        if ancestor != pid:
            continue
        if b"broker" in args and any(b"tansu" in a for a in args[:1]):
            found["broker"] = child
        elif b"process" in args:
            found["processor"] = child
        elif b"sink" in args:
            found["sink"] = child
    return found


def stack_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads((data_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return None
    return record


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any PREFLOG_* setting (no exported broker address), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env.update(extra)
    return env


class Up:
    """A `preflog up` subprocess and the children it records in stack.json."""

    def __init__(self, data_dir: Path, *args: str, prefix: tuple[str, ...] = (), cwd: Path | None = None) -> None:
        command = [*prefix, sys.executable, "-m", "preflog"]
        command += ["--data-dir", str(data_dir)] if cwd is None else []
        self.data_dir = data_dir if cwd is None else cwd / ".preflog"
        self.proc = subprocess.Popen(
            [*command, "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(),
            cwd=cwd,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or []), daemon=True)
        self._reader.start()
        self.pids: dict[str, int] = {}

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 120.0) -> dict[str, int]:
        """Wait until up runs its three children and has printed where they are; returns their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pids.update(children_of(self.proc.pid))
            if set(self.pids) >= set(CHILDREN) and "data directory" in self.output:
                return dict(self.pids)
            assert self.proc.poll() is None, f"preflog up exited early:\n{self.output}"
            time.sleep(0.2)
        raise AssertionError(f"preflog up did not start its children within {timeout} s:\n{self.output}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill_all(self) -> None:
        """Test clean-up: SIGKILL to up's process group and to every child it recorded."""
        with suppress(OSError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.pids.values():
            with suppress(OSError, subprocess.TimeoutExpired):
                os.kill(pid, signal.SIGKILL)
        with suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(10)


@contextmanager
def running_up(data_dir: Path, *args: str, **kwargs: Any) -> Iterator[Up]:
    up = Up(data_dir, *args, **kwargs)
    try:
        yield up
    finally:
        up.kill_all()


def wait_gone(pids: dict[str, int], timeout: float) -> dict[str, int]:
    """The pids still alive after ``timeout`` seconds (empty: all gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {name: pid for name, pid in pids.items() if alive(pid)}
        if not left:
            return {}
        time.sleep(0.2)
    return {name: pid for name, pid in pids.items() if alive(pid)}


@pytest.mark.parametrize(
    ("sig", "said"),
    [(signal.SIGTERM, "stopping (SIGTERM)"), (signal.SIGINT, "stopping (Ctrl-C)"), (signal.SIGHUP, "SIGHUP")],
)
def test_a_stop_signal_stops_every_child_and_removes_the_stack_file(tmp_path: Path, sig: int, said: str) -> None:
    with running_up(tmp_path / "data") as up:
        children = up.wait_ready()
        time.sleep(2)  # let the services get going
        up.signal(sig)
        up.proc.wait(60)
        assert wait_gone(children, 5) == {}, up.output
        assert up.proc.returncode == 0, up.output
        assert said in up.output
        assert not (tmp_path / "data" / "stack.json").exists()


def test_kill_9_of_up_takes_its_children_with_it(tmp_path: Path) -> None:
    with running_up(tmp_path / "data") as up:
        children = up.wait_ready()
        time.sleep(2)
        up.signal(signal.SIGKILL)
        up.proc.wait(10)
        assert wait_gone(children, 30) == {}
        assert stack_file(tmp_path / "data") is not None  # left behind, but stale: commands ignore it
        listed = subprocess.run(
            [sys.executable, "-m", "preflog", "--data-dir", str(tmp_path / "data"), "topics", "list"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 2 and "using the stack" not in listed.stderr


def test_a_second_signal_during_the_stop_orphans_nothing(tmp_path: Path) -> None:
    with running_up(tmp_path / "data") as up:
        children = up.wait_ready()
        time.sleep(2)
        up.signal(signal.SIGTERM)
        time.sleep(0.3)
        up.signal(signal.SIGTERM)
        up.proc.wait(30)
        assert wait_gone(children, 5) == {}, up.output
        assert up.proc.returncode == 0, up.output


def test_up_under_timeout_stops_every_child(tmp_path: Path) -> None:
    with running_up(tmp_path / "data", prefix=("timeout", "-s", "TERM", "15")) as up:
        children = up.wait_ready()
        up.proc.wait(90)
        assert wait_gone(children, 5) == {}, up.output
        assert "stopping (SIGTERM)" in up.output


def test_commands_find_the_running_stack_without_an_exported_address(tmp_path: Path) -> None:
    """The README tour from a second terminal: same directory, no PREFLOG_KAFKA__BOOTSTRAP_SERVERS."""
    with running_up(tmp_path, cwd=tmp_path) as up:
        children = up.wait_ready()
        record = stack_file(tmp_path / ".preflog")
        assert record is not None and record["up_pid"] == up.proc.pid
        assert {k: record["services"].get(k, record["broker_pid"]) for k in CHILDREN} == children
        listed = subprocess.run(
            [sys.executable, "-m", "preflog", "topics", "list"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "preflog.pairs.v1" in listed.stdout
        assert f"using the stack of preflog up: {record['bootstrap_servers']}" in listed.stderr
        second = subprocess.run(
            [sys.executable, "-m", "preflog", "up"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert "already runs from" in second.stderr and str(up.proc.pid) in second.stderr
        up.signal(signal.SIGTERM)
        up.proc.wait(60)
    assert len((tmp_path / ".preflog" / "incarnations.log").read_text().splitlines()) == 1


def test_three_stacks_start_at_once_and_each_service_serves_its_metrics(tmp_path: Path) -> None:
    ups: list[Up] = []
    try:
        ups = [Up(tmp_path / f"data-{n}") for n in range(3)]
        children = [up.wait_ready(180) for up in ups]
        time.sleep(3)
        for up in ups:
            assert up.proc.poll() is None, up.output
            record = stack_file(up.data_dir)
            assert record is not None and set(record["metrics"]) == {"processor", "sink"}
            with urllib.request.urlopen(record["metrics"]["processor"], timeout=10) as response:
                assert b"preflog_processor_events_in" in response.read()
        assert len({stack_file(up.data_dir)["bootstrap_servers"] for up in ups}) == 3  # type: ignore[index]
        for up in ups:
            up.signal(signal.SIGTERM)
        for up, pids in zip(ups, children, strict=True):
            up.proc.wait(90)
            assert up.proc.returncode == 0, up.output
            assert wait_gone(pids, 5) == {}
    finally:
        for up in ups:
            up.kill_all()


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port with a listener on it for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_broker_retries_when_its_port_is_taken_before_it_binds(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([occupied_port])
    real = broker_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or real())
    with broker_module.EmbeddedBroker(tmp_path / "broker") as b:
        assert b.port != occupied_port
        assert b.process is not None and b.process.poll() is None
    assert "Address in use" in (tmp_path / "broker" / "broker.log").read_text()


def test_broker_does_not_mistake_another_broker_on_its_port_for_itself(
    tmp_path: Path, broker: broker_module.EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([broker.port])  # the session's broker already listens there
    real = broker_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or real())
    with broker_module.EmbeddedBroker(tmp_path / "broker") as b:
        assert b.port != broker.port
        assert b.process is not None and b.process.poll() is None


def test_stack_comes_up_when_the_ports_it_would_pick_are_taken(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the parent picked the metrics ports, released them, and a child found one taken and died."""
    from preflog.deploy import stack as stack_module
    from preflog.settings import Settings

    picks = iter([occupied_port] * 3)
    real = broker_module.free_port
    pick = lambda: next(picks, None) or real()  # noqa: E731
    monkeypatch.setattr(broker_module, "free_port", pick)
    monkeypatch.setattr(stack_module, "free_port", pick, raising=False)
    for name in [k for k in os.environ if k.startswith("PREFLOG_")]:
        monkeypatch.delenv(name)
    stack = stack_module.Stack(Settings(data_dir=tmp_path / "data"))
    try:
        stack.start()
        stack.start_processor()
        stack.start_sink()
        stack.wait(8)  # raises if a service died
        stack.publish_metrics(30)
        assert stack.record is not None and set(stack.record.metrics) == {"processor", "sink"}
        for url in stack.record.metrics.values():
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
        stored = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert stored["metrics"] == stack.record.metrics
    finally:
        stack.stop()
    assert wait_gone(stack.pids(), 5) == {}
