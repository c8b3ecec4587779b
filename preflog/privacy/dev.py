"""Privacy for the embedded demo: a dev-only master key and pseudonym secret in the data directory.

``preflog up --demo`` makes them (once) and writes ``<data dir>/privacy/dev.json``; every preflog process
started from that data directory without privacy settings of its own then uses them, so the demo's
producers seal and its readers open without any export. Keys kept beside the data protect nothing:
the demo says so loudly. Production sets ``PREFLOG_PRIVACY__*`` (docs/privacy.md).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from .keys import generate_master

__all__ = ["DEV_FILE", "dev_privacy", "make_dev"]

DEV_FILE = Path("privacy") / "dev.json"


def make_dev(data_dir: Path) -> tuple[dict[str, Any], bool]:
    """The dev privacy settings of ``data_dir``, made if missing; whether they were made now."""
    found = dev_privacy(data_dir)
    if found is not None:
        return found, False
    folder = (Path(data_dir) / "privacy").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / "dev-master.key"
    if not master.exists():
        generate_master(master)
    secret = folder / "dev-pseudonym.secret"
    if not secret.exists():
        secret.write_text(secrets.token_hex(32) + "\n")
        secret.chmod(0o600)
    conf = {
        "enabled": True,
        "master_key_file": str(master),
        "pseudonym_secret_file": str(secret),
        "keys_dir": str(folder / "keys"),
    }
    (Path(data_dir) / DEV_FILE).write_text(json.dumps(conf, indent=2) + "\n")
    return conf, True


def dev_privacy(data_dir: Path) -> dict[str, Any] | None:
    """The dev privacy settings ``preflog up --demo`` left in ``data_dir``, or None."""
    path = Path(data_dir) / DEV_FILE
    if not path.is_file():
        return None
    conf: dict[str, Any] = json.loads(path.read_text())
    return conf
