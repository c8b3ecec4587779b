"""``preflog serve`` as a real subprocess on a free port, with keys made in its data directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from preflog.api.keys import KeyFile
from tests import service_env

from .conftest import Worker


class Api:
    """One running API service: its base URL, its process and its key file."""

    def __init__(self, worker: Worker, url: str, data_dir: Path) -> None:
        self.worker, self.url, self.data_dir = worker, url, data_dir

    @property
    def keys(self) -> KeyFile:
        return KeyFile.load(self.data_dir / "api" / "keys.json")

    def key(self, tenant: str = "acme", scopes: tuple[str, ...] = ("inference", "feedback"), **more: Any) -> str:
        """A new key of ``tenant`` (the service reads the key file again at its next request)."""
        text, _ = self.keys.create(tenant, scopes, **more)
        return text

    def post(self, route: str, body: Any, key: str | None, **headers: str) -> httpx.Response:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.post(f"{self.url}{route}", json=body, headers=headers, timeout=30)


def start_api(
    bootstrap: str, topics: dict[str, str], data_dir: Path, log: Path, privacy: dict[str, Any] | None = None, **api: Any
) -> Api:
    """Start ``preflog serve --port 0`` and wait until it answers /healthz (``privacy``: PREFLOG_PRIVACY__*)."""
    import json

    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / "api.port"
    port_file.unlink(missing_ok=True)
    env = service_env.api_env(bootstrap, topics, data_dir, **api)
    for name, value in (privacy or {}).items():
        env[f"PREFLOG_PRIVACY__{name.upper()}"] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    worker = Worker(env, log, ("serve", "--port", "0", "--port-file", str(port_file))).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            raise AssertionError(f"preflog serve exited: {worker.output()[-2000:]}")
        if port_file.exists():
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return Api(worker, url, data_dir)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    worker.stop()
    raise AssertionError(f"preflog serve did not answer in 30 s: {worker.output()[-2000:]}")

