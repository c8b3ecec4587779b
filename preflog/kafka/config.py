"""One builder per kind of Kafka client: consumer, producer, admin.

Each starts from a ``settings.kafka.client_config()``-style dict (librdkafka
keys: ``bootstrap.servers``, ``security.protocol``, ``sasl.*``, ``ssl.*`` and
whatever ``PREFLOG_KAFKA__EXTRA`` adds), so a user's security settings reach
every client without code changes. The keys a builder sets are the ones its
purpose needs (a group, no auto commit, ...) and win over the base, as they
always did at the call sites.

Example:
    >>> consumer_config({"bootstrap.servers": "b:9092"}, "preflog-tail")["enable.auto.commit"]
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["QUIET", "admin_config", "consumer_config", "producer_config"]

#: librdkafka's own log lines off (e.g. "Disconnected" at shutdown); errors still reach the caller.
QUIET: dict[str, Any] = {"log_level": 0}

OffsetReset = Literal["earliest", "latest", "error"]
Isolation = Literal["read_committed", "read_uncommitted"]


def consumer_config(
    base: Mapping[str, Any],
    group: str,
    *,
    offset_reset: OffsetReset | None = None,
    eof: bool = False,
    isolation: Isolation | None = None,
    session_timeout_s: float | None = None,
    quiet: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A consumer that never commits on its own: preflog commits (if at all) after its work is done.

    Args:
        base: The cluster's client configuration (``settings.kafka.client_config()``).
        group: ``group.id``: the group it commits to, or a name for a consumer that only assigns.
        offset_reset: ``auto.offset.reset`` (librdkafka's default, ``latest``, when None).
        eof: Report end-of-partition events (``enable.partition.eof``), where a fetch says a partition ends.
        isolation: ``isolation.level`` (librdkafka's default, ``read_committed``, when None).
        session_timeout_s: ``session.timeout.ms`` for a subscribing consumer.
        quiet: Silence librdkafka's log lines (:data:`QUIET`).
        extra: More librdkafka keys for this use (e.g. ``fetch.wait.max.ms``); they win over everything.

    Returns:
        A new dict for ``confluent_kafka.Consumer``.
    """
    config: dict[str, Any] = {**base, "group.id": group, "enable.auto.commit": False}
    if offset_reset is not None:
        config["auto.offset.reset"] = offset_reset
    if eof:
        config["enable.partition.eof"] = True
    if isolation is not None:
        config["isolation.level"] = isolation
    if session_timeout_s is not None:
        config["session.timeout.ms"] = int(session_timeout_s * 1000)
    if quiet:
        config.update(QUIET)
    config.update(extra or {})
    return config


def producer_config(
    base: Mapping[str, Any],
    *,
    idempotent: bool = True,
    linger_ms: int | None = None,
    quiet: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A producer; idempotent (``acks=all``) unless told otherwise.

    Unlike the consumer's keys, the defaults here yield to ``base``: a user may
    tune ``linger.ms`` or ``acks`` through the cluster configuration.

    Args:
        base: The cluster's client configuration.
        idempotent: ``enable.idempotence`` with ``acks=all`` (no duplicates on retry).
        linger_ms: ``linger.ms`` default when ``base`` does not set it (5 when None).
        quiet: Silence librdkafka's log lines.
        extra: More librdkafka keys for this use; they win over everything.

    Returns:
        A new dict for ``confluent_kafka.Producer``.
    """
    defaults: dict[str, Any] = {"linger.ms": 5 if linger_ms is None else linger_ms}
    if idempotent:
        defaults.update({"enable.idempotence": True, "acks": "all"})
    config = {**defaults, **base}
    if quiet:
        config.update(QUIET)
    config.update(extra or {})
    return config


def admin_config(
    base: Mapping[str, Any], *, quiet: bool = False, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An admin client (metadata, topics, group offsets).

    Args:
        base: The cluster's client configuration.
        quiet: Silence librdkafka's log lines.
        extra: More librdkafka keys for this use; they win over everything.

    Returns:
        A new dict for ``confluent_kafka.admin.AdminClient``.
    """
    config = dict(base)
    if quiet:
        config.update(QUIET)
    config.update(extra or {})
    return config
