"""Which broker a command uses: flag, environment, a running `preflog up` stack, or the default."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflog.cli.connect import StackDiscovery, needs_broker
from preflog.deploy.runfile import StackRecord, find_running, read_record, remove_record
from preflog.settings import load_settings


@dataclass
class Case:
    args: list[str]
    needs: bool


@pytest.mark.parametrize(
    "case",
    [
        Case(["tail", "inference"], True),
        Case(["tail", "--help"], False),
        Case(["topics"], False),
        Case(["topics", "list"], True),
        Case(["offsets", "reset", "--group", "g", "--to-earliest"], True),
        Case(["produce", "events.jsonl"], True),
        Case(["produce", "--dry-run", "events.jsonl"], False),
        Case(["generate", "--requests", "5"], True),
        Case(["generate", "--out", "x.jsonl"], False),
        Case(["generate", "--out=x.jsonl"], False),
        Case(["replay", "--dry-run"], True),
        Case(["process"], True),
        Case(["sink"], True),
        Case(["reconcile", "--json"], True),
        Case(["verify"], False),
        Case(["export", "out.jsonl"], False),
        Case(["up", "--demo"], False),
    ],
    ids=lambda c: " ".join(c.args),
)
def test_which_commands_need_a_broker(case: Case) -> None:
    assert needs_broker(case.args[0], case.args[1:]) is case.needs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _record(up_pid: int, broker_pid: int) -> StackRecord:
    return StackRecord("127.0.0.1:40001", "inc-1", "2026-11-25T10:00:00+00:00", up_pid, broker_pid)


def test_a_stack_file_counts_only_while_up_and_its_broker_run(tmp_path: Path) -> None:
    _record(os.getpid(), os.getpid()).write(tmp_path)
    found = find_running(tmp_path)
    assert found is not None and found.bootstrap_servers == "127.0.0.1:40001"
    _record(_dead_pid(), os.getpid()).write(tmp_path)
    assert find_running(tmp_path) is None  # up was killed: stale
    assert read_record(tmp_path) is not None
    (tmp_path / "stack.json").write_text("{not json")
    assert find_running(tmp_path) is None


def test_a_stack_file_is_removed_only_by_its_own_incarnation(tmp_path: Path) -> None:
    _record(os.getpid(), os.getpid()).write(tmp_path)
    remove_record(tmp_path, "another-run")
    assert (tmp_path / "stack.json").exists()
    remove_record(tmp_path, "inc-1")
    assert not (tmp_path / "stack.json").exists()


def test_flag_and_environment_win_over_a_discovered_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("PREFLOG_")]:
        monkeypatch.delenv(name)
    _record(os.getpid(), os.getpid()).write(tmp_path)
    flags = {"kafka": {"bootstrap_servers": None}, "data_dir": tmp_path}
    discovery = StackDiscovery()
    assert load_settings(flags, discover=discovery).kafka.bootstrap_servers == "127.0.0.1:40001"
    assert discovery.found is not None and "stack.json" in discovery.where()
    given = {"kafka": {"bootstrap_servers": "flag:9092"}, "data_dir": tmp_path}
    assert load_settings(given, discover=StackDiscovery()).kafka.bootstrap_servers == "flag:9092"
    monkeypatch.setenv("PREFLOG_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    assert load_settings(flags, discover=StackDiscovery()).kafka.bootstrap_servers == "env:9092"
    monkeypatch.delenv("PREFLOG_KAFKA__BOOTSTRAP_SERVERS")
    monkeypatch.setenv("PREFLOG_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings({}, discover=StackDiscovery()).kafka.bootstrap_servers == "127.0.0.1:9092"
