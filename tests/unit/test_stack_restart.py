"""up restarts a service that abandoned a batch (exit 70), a bounded number of times a minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
