"""Create preflog's topics with the configured partition counts, and check existing ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from preflog.errors import ConfigError, PreflogError

from .config import admin_config

__all__ = ["MissingTopicError", "ensure_topics", "partition_count", "partition_counts"]


class MissingTopicError(PreflogError):
    """A topic a command reads does not exist."""


def partition_counts(kafka_config: Mapping[str, Any], topics: Iterable[str], timeout: float = 10.0) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists.

    Args:
        kafka_config: The cluster's client configuration.
        topics: Topic names.
        timeout: Seconds to wait for the metadata.

    Returns:
        Topic -> partition count; missing topics are left out.
    """
    metadata = AdminClient(admin_config(kafka_config)).list_topics(timeout=timeout)
    out = {}
    for name in topics:
        meta = metadata.topics.get(name)
        if meta is not None and meta.error is None:
            out[name] = len(meta.partitions)
    return out


def partition_count(kafka_config: Mapping[str, Any], topic: str) -> int:
    """Partitions of ``topic``.

    Raises:
        MissingTopicError: The topic does not exist (the message names the fix).
    """
    n = partition_counts(kafka_config, [topic]).get(topic)
    if n is None:
        where = kafka_config.get("bootstrap.servers", "the cluster")
        raise MissingTopicError(f"topic {topic} does not exist on {where}; run `preflog topics create`")
    return n


def ensure_topics(
    kafka_config: Mapping[str, Any],
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing ``topics``.

    An existing topic with another partition count is an error: records are
    keyed by request_id, so the join needs every input topic partitioned alike.

    Args:
        kafka_config: The cluster's client configuration.
        topics: Topic names.
        partitions: Partitions of every topic.
        replication_factor: Replicas of each partition.
        config: Topic configuration (e.g. ``cleanup.policy``).
        timeout: Seconds to wait for each step.

    Returns:
        The topics created.

    Raises:
        ConfigError: A topic has another partition count, or could not be created.
    """
    names = list(dict.fromkeys(topics))
    existing = partition_counts(kafka_config, names, timeout)
    wrong = {t: n for t, n in existing.items() if n != partitions}
    if wrong:
        listing = ", ".join(f"{t} has {n}" for t, n in wrong.items())
        raise ConfigError(
            f"{listing} partitions but {partitions} are configured; set topics.partitions "
            f"(PREFLOG_TOPICS__PARTITIONS) to match, or recreate the topics"
        )
    missing = [t for t in names if t not in existing]
    if not missing:
        return []
    admin = AdminClient(admin_config(kafka_config))
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {}))
            for t in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"could not create topic {name}: {exc.args[0].str()}") from exc
    return created
