"""`preflog up` as a real process: what it starts never outlives it, however it is stopped.

Every test kills whatever it started (by pid, and the process group of `up`) when it fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .lifecycle_helpers import CHILDREN, Up, clean_env, running_up, stack_file, wait_gone

pytestmark = pytest.mark.integration


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
            assert record is not None and set(record["metrics"]) == {"processor", "sink", "api"}
            with urllib.request.urlopen(record["metrics"]["processor"], timeout=10) as response:
                assert b"preflog_processor_events_in" in response.read()
            api = (up.data_dir / "api.url").read_text().strip()
            with urllib.request.urlopen(f"{api}/healthz", timeout=10) as response:
                assert json.loads(response.read())["ok"] is True
        assert len({stack_file(up.data_dir)["bootstrap_servers"] for up in ups}) == 3  # type: ignore[index]
        assert len({(up.data_dir / "api.url").read_text() for up in ups}) == 3
        for up in ups:
            up.signal(signal.SIGTERM)
        for up, pids in zip(ups, children, strict=True):
            up.proc.wait(90)
            assert up.proc.returncode == 0, up.output
            assert wait_gone(pids, 5) == {}
    finally:
        for up in ups:
            up.kill_all()
