"""Is the broker there? A quick check before a command starts clients that would retry for minutes.

Without it, a command pointed at a closed port waits 10-45 s for its client
to give up and prints pages of librdkafka connection lines. The probe first
opens a TCP connection to each bootstrap address (a refused or unreachable
address fails at once), then asks for metadata with a short timeout (a port
that accepts but does not speak Kafka, or refuses the credentials), with the
client's own log silenced.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from preflog.errors import PreflogError

__all__ = ["BrokerUnreachable", "check_broker"]

HOW_TO = "start one with `preflog up`, or point at one with --bootstrap-servers or PREFLOG_KAFKA__BOOTSTRAP_SERVERS"


class BrokerUnreachable(PreflogError):
    """No Kafka broker answers at the configured bootstrap address."""


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        item = item.strip().split("://")[-1]
        host, _, port = item.rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def _tcp_error(addresses: list[tuple[str, int]], timeout: float) -> str | None:
    """None when any address accepts a TCP connection, else the last reason."""
    reason = "no address to try"
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    return reason.lower()


def check_broker(kafka_config: Mapping[str, Any], timeout: float = 2.5, where: str = "", quiet: bool = True) -> None:
    """Raise :class:`BrokerUnreachable` unless the brokers in ``kafka_config`` answer within ``timeout`` s.

    ``where`` says where the address came from (e.g. the stack file), for the message; ``quiet``
    silences the client's own log lines during the check.
    """
    bootstrap = str(kafka_config.get("bootstrap.servers", ""))
    origin = f" ({where})" if where else ""
    deadline = time.monotonic() + timeout
    addresses = _addresses(bootstrap)
    if addresses:
        refused = _tcp_error(addresses, min(timeout, 2.0))
        if refused is not None:
            raise BrokerUnreachable(f"no Kafka broker at {bootstrap}{origin}: {refused}; {HOW_TO}")
    from confluent_kafka.admin import AdminClient

    from preflog.kafka.config import admin_config

    config = admin_config(kafka_config, quiet=quiet, extra={"log.connection.close": "false"} if quiet else None)
    try:
        AdminClient(config).list_topics(timeout=max(0.5, deadline - time.monotonic()))
    except Exception as exc:
        raise BrokerUnreachable(
            f"the Kafka broker at {bootstrap}{origin} did not answer a metadata request within {timeout:g} s "
            f"({type(exc).__name__}; --verbose shows the client's log); {HOW_TO}"
        ) from None
