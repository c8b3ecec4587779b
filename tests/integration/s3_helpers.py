"""A real S3 API for tests and the fault suite (moto's server), and a TCP proxy that can cut it (a storage outage).

``benchmarks/fault_suite/fault_stack.py`` starts its object store with :class:`MotoServer`
too; :data:`Proxy` is :class:`tests.tcp_proxy.TcpProxy`, whose ``cut()``
refuses and resets connections until ``restore()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from preflog.deploy.broker import free_port
from tests.tcp_proxy import TcpProxy

__all__ = ["CREDENTIALS", "MotoServer", "Proxy"]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

#: forwards a loopback port to the server; ``cut()`` drops and refuses connections until ``restore()``
Proxy = TcpProxy


class MotoServer:
    """``moto_server`` on a free loopback port, in a session of its own.

    Args:
        log: Where the server's output goes (appended); None discards it.

    Raises:
        RuntimeError: the server did not answer within 30 seconds (it is killed).
    """

    def __init__(self, log: Path | None = None) -> None:
        self.port = free_port()
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(log.open("ab")) if log is not None else subprocess.DEVNULL
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
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
        """The server's URL, for ``endpoint_url`` and ``PREFLOG_SINK__S3_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client of this server, with the test credentials."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> None:
        """Creates the bucket ``name``."""
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        """Stops the server (SIGTERM) and waits for it, up to 10 seconds."""
        self.proc.terminate()
        self.proc.wait(10)

    def close(self) -> None:
        """kill -9 of the server's process group, for when nothing more is read from it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
