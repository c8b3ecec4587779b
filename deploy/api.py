"""The ingestion API in ``preflog up``: ``preflog serve`` as a service of the stack, and its dev key.

The API listens on ``api.port`` (8787) when it is free, else on a port the kernel picks; either way the
address is printed and written to ``<data-dir>/api.url``. ``preflog up`` makes one *dev key* (tenant
``dev``, both scopes) the first time and keeps its text in ``<data-dir>/api/dev-key`` (mode 0600), so
the README's ``curl`` works from a second terminal; a key kept beside the data is for trying preflog,
never for production (``preflog keys create`` makes real ones).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from preflog.api.app import listen
from preflog.api.keys import KeyFile, KeyRefused

from .stack import Service, Stack

__all__ = ["DEV_TENANT", "dev_key", "start_api"]

DEV_TENANT = "dev"


def _free(host: str, port: int) -> bool:
    """Whether ``preflog serve`` could listen on ``host:port`` now (the same socket, closed again)."""
    try:
        listen(host, port).close()
    except OSError:
        return False
    return True


def start_api(stack: Stack, timeout: float = 20.0) -> tuple[Service, str]:
    """Start ``preflog serve`` beside the stack's other services; returns it and its base URL."""
    settings = stack.settings
    data_dir = Path(settings.data_dir)
    api = settings.api
    port_file = data_dir / "api.port"
    for port in dict.fromkeys([api.port if api.port and _free(api.host, api.port) else 0, 0]):
        port_file.unlink(missing_ok=True)
        args = ["serve", "--port", str(port), "--port-file", str(port_file)]
        service = stack._spawn("api", args, settings, "")
        deadline = time.monotonic() + timeout
        while not port_file.exists() and service.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if port_file.exists():
            break
        stack.services.remove(service)  # its port was taken meanwhile (another stack): a free one instead
        service.stop()
    else:
        raise RuntimeError(f"the API did not start; see {service.log}")
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host
    url = f"http://{host}:{int(port_file.read_text())}"
    (data_dir / "api.url").write_text(url + "\n")
    service.where = url
    return service, url


def dev_key(settings_data_dir: Path, keys_file: Path | None = None) -> tuple[str, Path, bool]:
    """The dev key's text, the file holding it, and whether it was made now."""
    data_dir = Path(settings_data_dir)
    keys = KeyFile.load(keys_file or data_dir / "api" / "keys.json")
    path = data_dir / "api" / "dev-key"
    with contextlib.suppress(OSError, KeyRefused):
        text = path.read_text().strip()
        keys.check(text, "inference")
        return text, path, False
    text, _ = keys.create(DEV_TENANT, ("inference", "feedback"), name="dev key of preflog up (not for production)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    return text, path, True
