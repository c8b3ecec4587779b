"""``preflog tail``: records of a preflog topic, decoded, as JSON lines."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import PreflogError
from ..schemas.tables import TOPIC_RECORDS
from .console import out, settings_of

__all__ = ["tail"]


def tail(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="Which topic: " + ", ".join(TOPIC_RECORDS))],
    limit: Annotated[int, typer.Option("--max", help="Stop after this many records (0 = follow).")] = 10,
    timeout: Annotated[float, typer.Option(help="Stop after this many idle seconds.")] = 5.0,
) -> None:
    """Print records of a preflog topic from the beginning, decoded, as JSON lines."""
    from ..kafka.reader import OFFSET_BEGINNING, RangeReader, Span
    from ..kafka.topics import partition_count
    from ..producers.files import json_default

    if role not in TOPIC_RECORDS:
        raise typer.BadParameter(f"{role!r}; choose one of {', '.join(TOPIC_RECORDS)}", param_hint="ROLE")
    s = settings_of(ctx)
    topic = s.topics.all()[role]
    config = s.kafka.client_config()
    spans = [Span(topic, p, OFFSET_BEGINNING) for p in range(partition_count(config, topic))]
    codec = s.make_codec()
    shown = 0
    # follow: no end; the reader stops after `timeout` idle seconds, this loop after `limit` records
    reader = RangeReader(
        config, "preflog-tail", spans, timeout=None, idle=timeout, on_idle="stop", strict=False, follow=True
    )
    with reader:
        for msg in reader.records():
            try:
                record: Any = codec.decode(msg.value() or b"", TOPIC_RECORDS[role], topic)
            except PreflogError as exc:
                record = {"undecodable": str(exc), "value_hex": (msg.value() or b"").hex()}
            line = json.dumps(record, default=json_default)
            out.print_json(line) if out.is_terminal else print(line)
            shown += 1
            if limit and shown >= limit:
                return
