"""The environment of a preflog service subprocess (``python -m preflog process`` or ``sink``) in tests.

Settings reach the service as ``PREFLOG_<SECTION>__<FIELD>`` variables, on
top of this process's environment without its own ``PREFLOG_`` variables.
The defaults suit the embedded broker: short sessions, no metrics port, and
no Faust recovery consistency check (the embedded broker reports high
watermarks low). Produce batches are the default size, as in production. Used by the fault suite
(``benchmarks/fault_suite/fault_run.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PROCESSOR_DEFAULTS", "api_env", "base_env", "processor_env", "sink_env"]

#: processor settings every test service gets unless it says otherwise
PROCESSOR_DEFAULTS: dict[str, Any] = {
    "session_timeout_s": 6,
    "metrics_port": 0,
    "recovery_consistency_check": False,  # the embedded broker reports high watermarks low
}


def base_env(bootstrap: str, topics: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without ``PREFLOG_`` variables, plus the broker and the topic names.

    Args:
        bootstrap: The Kafka bootstrap servers.
        topics: Topic name per role (``TopicSettings.all()``).

    Returns:
        The environment for a service subprocess.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env["PREFLOG_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
    env.update({f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.items()})
    return env


def processor_env(bootstrap: str, topics: Mapping[str, str], state_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of ``preflog process``.

    Args:
        bootstrap: The Kafka bootstrap servers.
        topics: Topic name per role.
        state_dir: The worker's state directory.
        **settings: Processor settings (``window_s=60``), over :data:`PROCESSOR_DEFAULTS` and a fresh ``app_id``.

    Returns:
        The environment for the subprocess.
    """
    env = base_env(bootstrap, topics)
    values = {
        "app_id": f"preflog-test-{uuid.uuid4().hex[:8]}",
        **PROCESSOR_DEFAULTS,
        "state_dir": str(state_dir),
        **settings,
    }
    env.update({f"PREFLOG_PROCESSOR__{k.upper()}": str(v) for k, v in values.items()})
    return env


def sink_env(bootstrap: str, topics: Mapping[str, str], **settings: Any) -> dict[str, str]:
    """The environment of ``preflog sink``.

    Args:
        bootstrap: The Kafka bootstrap servers.
        topics: Topic name per role.
        **settings: Sink settings (``url=...``, ``s3_endpoint_url=...``), over a fresh ``group_id`` and no metrics.

    Returns:
        The environment for the subprocess (its consumer session times out after 6 s, as the processor's).
    """
    env = base_env(bootstrap, topics)
    env["PREFLOG_PROCESSOR__SESSION_TIMEOUT_S"] = "6"
    values = {"group_id": f"preflog-sink-test-{uuid.uuid4().hex[:8]}", "metrics_port": 0, **settings}
    env.update({f"PREFLOG_SINK__{k.upper()}": str(v) for k, v in values.items()})
    return env


def api_env(bootstrap: str, topics: Mapping[str, str], data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of ``preflog serve`` (keys in ``<data_dir>/api/keys.json``; ``settings``: api settings)."""
    env = base_env(bootstrap, topics)
    env["PREFLOG_DATA_DIR"] = str(data_dir)
    env.update({f"PREFLOG_API__{k.upper()}": str(v) for k, v in settings.items()})
    return env
