"""The pieces the fault suite starts, kills and restarts: Tansu on S3 and the preflog services.

Every child runs in its own session and is killed by process group; the run
closes each piece when it ends. Everything listens on 127.0.0.1 only. The
object store is moto's server (``tests/integration/s3_helpers.py``); the
services' environment comes from ``tests/service_env.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from preflog.deploy.broker import broker_binary, free_port
from tests.integration.s3_helpers import CREDENTIALS, MotoServer

__all__ = ["CODE_DIRS", "Service", "Tansu", "code_version", "snapshot_code"]


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """kill -9 of ``proc``'s process group (nothing when it never started), then reaps it."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, even if the leader already exited
    proc.wait()


class Tansu:
    """Tansu listening on ``port`` and advertising ``advertised`` (a proxy in front).

    ``storage`` is ``s3://BUCKET/`` (the log in moto's S3: survives a restart) or ``memory://tansu/``.
    """

    def __init__(self, moto: MotoServer, storage: str, advertised: int, log: Path) -> None:
        self.moto, self.storage, self.advertised, self.log = moto, storage, advertised, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self, timeout: float = 30.0) -> None:
        """Starts the broker, retrying until it listens (a killed one may hold its port for a while)."""
        env = {
            **os.environ,
            **CREDENTIALS,
            "AWS_ENDPOINT": self.moto.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised}",
            "--storage-engine",
            self.storage,
        ]
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            if self._wait_listening(min(10.0, deadline - time.monotonic())):
                return
            _kill_group(self.proc)  # e.g. the port still busy after a kill (notes/broker.md quirk 4): try again
            if time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not listen on {self.port}; see {self.log}")
            time.sleep(0.5)

    def _wait_listening(self, timeout: float) -> bool:
        """Whether the broker accepts connections within ``timeout`` seconds (False if it exited)."""
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def kill(self) -> None:
        """kill -9."""
        _kill_group(self.proc)

    def restart(self) -> None:
        """Start again on the same port (the log is in S3)."""
        self.restarts += 1
        self.start()

    def close(self) -> None:
        """kill -9, for good."""
        _kill_group(self.proc)


class Service:
    """One ``python -m preflog ...`` subprocess, started again after each kill."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path, cwd: Path | None = None) -> None:
        """``cwd`` (with ``PYTHONPATH`` in ``env``) selects which copy of preflog runs."""
        self.name, self.args, self.env, self.logdir, self.cwd = name, args, env, logdir, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def log(self) -> Path:
        """The service's log file (every start appends to it)."""
        return self.logdir / f"{self.name}.log"

    def start(self) -> None:
        """Starts the service again, marking the start in its log."""
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "preflog", *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self, marker: str) -> bool:
        """Whether the log of the current start holds ``marker`` (e.g. Faust's "Worker]: Ready")."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return False
        return marker in text.rsplit(f"===== start {self.starts} at", 1)[-1]

    def wait_ready(self, marker: str, timeout: float) -> bool:
        """Whether the current start logs ``marker`` within ``timeout`` seconds (False if it exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(marker):
                return True
            if not self.alive():
                return False
            time.sleep(0.2)
        return False

    def alive(self) -> bool:
        """Whether the current start is still running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no flush, no commit."""
        self.kills += 1
        _kill_group(self.proc)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, and kill -9 of the group after ``timeout`` seconds or once it has exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
        _kill_group(self.proc)


CODE_DIRS = ("preflog", "schemas", "producers", "processors", "sinks", "deploy")


def snapshot_code(repo: Path, dest: Path) -> dict[str, str]:
    """Copy preflog's code as it is now to ``dest``; returns the environment that runs that copy.

    Other people edit the working tree while a long run goes on; without a copy,
    each restarted service would run whatever the files hold at that moment.
    """
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in CODE_DIRS:
        shutil.copytree(repo / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return {"PYTHONPATH": str(dest)}


def code_version(repo: Path) -> str:
    """HEAD and how many files differ from it, e.g. ``57b5484 +3 modified``."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *CODE_DIRS], cwd=repo, capture_output=True, text=True
        ).stdout
    except OSError:
        return "unknown"
    return f"{head.strip()} +{len(dirty.splitlines())} uncommitted file(s) in the code folders"
