"""up restarts a service that abandoned a batch (exit 70), a bounded number of times a minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from preflog.deploy.stack import RESTART_CODE, RESTART_LIMIT, Service, Stack
from preflog.errors import PreflogError
from preflog.processors.batch import EXIT_BATCH_ABANDONED
from preflog.settings import Settings


def test_the_restart_code_is_the_processors() -> None:
    assert RESTART_CODE == EXIT_BATCH_ABANDONED


def _service(tmp_path: Path, code: int, launches: list[int]) -> Service:
    def launch() -> subprocess.Popen[bytes]:
        launches.append(1)
        return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])

    return Service("processor", launch(), tmp_path / "processor.log", "", None, launch)


def test_exit_70_is_restarted_until_the_limit_then_up_gives_up(tmp_path: Path) -> None:
    launches: list[int] = []
    stack = Stack(Settings(data_dir=tmp_path))
    stack.services.append(_service(tmp_path, RESTART_CODE, launches))
    with pytest.raises(PreflogError, match="exited with code 70 \\(again and again"):
        stack.wait(30)
    assert len(launches) == 1 + RESTART_LIMIT


def test_any_other_exit_stops_up_at_once(tmp_path: Path) -> None:
    launches: list[int] = []
    stack = Stack(Settings(data_dir=tmp_path))
    stack.services.append(_service(tmp_path, 3, launches))
    with pytest.raises(PreflogError, match="processor exited with code 3; see"):
        stack.wait(30)
    assert len(launches) == 1


def test_stop_stops_the_processor_then_drains_the_sink_then_stops_it(tmp_path: Path, monkeypatch: Any) -> None:
    """The embedded broker's log dies with it: what the processor sent last must reach the files first."""
    order: list[str] = []
    stack = Stack(Settings(data_dir=tmp_path))
    for name in ("processor", "sink"):  # started in this order, as up does
        service = Service(name, subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]), tmp_path, "")
        monkeypatch.setattr(service, "stop", lambda urgent=None, name=name: order.append(f"stop {name}"))
        stack.services.append(service)
    monkeypatch.setattr(stack, "_drain", lambda sink, timeout, urgent: order.append(f"drain {sink.name}"))
    try:
        stack.stop()
    finally:
        for service in stack.services:
            service.process.kill()
            service.process.wait()
    assert order == ["stop processor", "drain sink", "stop sink"]
