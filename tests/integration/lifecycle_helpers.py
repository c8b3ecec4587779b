"""Running `preflog up` as a real process in tests, and finding what it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

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
