"""The pieces the fault suite starts, kills and restarts: moto's S3, Tansu on S3, preflog services.

Every child runs in its own session and is killed by process group; nothing
outlives :meth:`Stack.close`. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from preflog.deploy.broker import broker_binary, free_port

__all__ = ["CREDENTIALS", "Moto", "Service", "Tansu"]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, even if the leader already exited
    proc.wait()


class Moto:
    """``moto_server`` on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        with log.open("ab") as out:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("moto server did not start")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def close(self) -> None:
        _kill_group(self.proc)


class Tansu:
    """Tansu listening on ``port`` and advertising ``advertised`` (a proxy in front).

    ``storage`` is ``s3://BUCKET/`` (the log in moto's S3: survives a restart) or ``memory://tansu/``.
    """

    def __init__(self, moto: Moto, storage: str, advertised: int, log: Path) -> None:
        self.moto, self.storage, self.advertised, self.log = moto, storage, advertised, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self, timeout: float = 30.0) -> None:
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
        return self.logdir / f"{self.name}.log"

    def start(self) -> None:
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(marker):
                return True
            if not self.alive():
                return False
            time.sleep(0.2)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no flush, no commit."""
        self.kills += 1
        _kill_group(self.proc)

    def stop(self, timeout: float = 20.0) -> None:
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


def base_env(bootstrap: str, topics: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env["PREFLOG_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
    env.update({f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.items()})
    return env


def processor_env(bootstrap: str, topics: dict[str, str], state_dir: Path, **settings: Any) -> dict[str, str]:
    env = base_env(bootstrap, topics)
    values = {
        "app_id": f"preflog-faults-{uuid.uuid4().hex[:8]}",
        "session_timeout_s": 6,
        "metrics_port": 0,
        "producer_max_batch_size": 1,
        "recovery_consistency_check": False,  # the embedded broker reports high watermarks low
        "state_dir": str(state_dir),
        **settings,
    }
    env.update({f"PREFLOG_PROCESSOR__{k.upper()}": str(v) for k, v in values.items()})
    return env


def sink_env(bootstrap: str, topics: dict[str, str], s3_endpoint: str, **settings: Any) -> dict[str, str]:
    env = base_env(bootstrap, topics)
    env.update(CREDENTIALS)
    env["PREFLOG_PROCESSOR__SESSION_TIMEOUT_S"] = "6"
    values = {"group_id": f"preflog-sink-faults-{uuid.uuid4().hex[:8]}", "metrics_port": 0, **settings}
    values["s3_endpoint_url"] = s3_endpoint
    env.update({f"PREFLOG_SINK__{k.upper()}": str(v) for k, v in values.items()})
    return env
