"""``preflog topics create`` and ``preflog topics list``."""

from __future__ import annotations

import typer
from rich.table import Table

from .console import out, settings_of

__all__ = ["topics_app"]

topics_app = typer.Typer(help="Create and inspect preflog's Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create every preflog topic that does not exist yet, with --partitions partitions.

    With privacy on (and no privacy.keys_dir), also the keys topic: one partition, compacted, with a
    bounded compaction lag so an erased key leaves the broker's disk within a day (KIP-354).
    """
    from ..kafka.topics import ensure_topics

    s = settings_of(ctx)
    created = ensure_topics(
        s.kafka.client_config(), s.topics.all().values(), s.topics.partitions, s.topics.replication_factor
    )
    if s.privacy.enabled and s.privacy.keys_dir is None:
        from ..privacy.store import TOPIC_CONFIG

        created += ensure_topics(
            s.kafka.client_config(), [s.privacy.keys_topic], 1, s.topics.replication_factor, config=TOPIC_CONFIG
        )
    out.print(f"created {len(created)} topic(s): {', '.join(created) or 'none, all exist'}")


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """Show preflog's topics and their partition counts."""
    from ..kafka.topics import partition_counts

    s = settings_of(ctx)
    counts = partition_counts(s.kafka.client_config(), s.topics.all().values())
    table = Table("role", "topic", "partitions")
    for role, topic in s.topics.all().items():
        table.add_row(role, topic, str(counts.get(topic, "missing")))
    out.print(table)
