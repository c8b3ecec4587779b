"""``preflog offsets show`` and ``preflog offsets reset``: the consumer groups of preflog's processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .console import out, settings_of

if TYPE_CHECKING:  # the commands import Kafka clients only when they run
    from ..kafka.offsets import ResetMode

__all__ = ["offsets_app"]

offsets_app = typer.Typer(
    help="Show and reset the consumer-group offsets of preflog's processes.", no_args_is_help=True
)


def _status(live: bool, state: str, members: int) -> str:
    """A group's state as it matters to the user: running or idle (no process reading), and its processes."""
    if not live:
        return "idle (no process is reading with it)"
    if "REBALANC" in state:  # PREPARING_REBALANCING, COMPLETING_REBALANCING
        return "running; its processes are joining or leaving (a rebalance)"
    if members:
        return f"running, {members} process(es)"
    return "running; the broker did not list its members"


def _ticks_note(ticks: str, interval_s: float) -> str:
    """What the ticks topic in the processor's group is, in one line."""
    return (
        f"{ticks}: the processor's clock, not data: it writes a tick to each partition every {interval_s:g} s "
        "so that join windows close when traffic stops"
    )


@offsets_app.command("show")
def offsets_show(
    ctx: typer.Context,
    group: Annotated[
        list[str] | None, typer.Option(help="Only this group (repeatable); default: all of preflog's.")
    ] = None,
) -> None:
    """Committed offset, end offset and lag per partition, for the processor's and the sink's groups."""
    from ..kafka.offsets import describe

    settings = settings_of(ctx)
    groups = settings.groups()
    shown: set[str] = set()
    for name in group or list(groups):
        info = describe(settings.kafka.client_config(), name, groups.get(name, []))
        table = Table(
            "topic",
            "partition",
            "committed",
            "end",
            "lag",
            title=f"group {name}: {_status(info.live, info.state, info.members)}",
        )
        for row in info.partitions:
            committed = "-" if row.committed is None else str(row.committed)
            table.add_row(
                row.topic, str(row.partition), committed, str(row.end), "-" if row.lag is None else str(row.lag)
            )
        out.print(table)
        shown |= {row.topic for row in info.partitions}
    if settings.topics.ticks in shown:
        out.print(_ticks_note(settings.topics.ticks, settings.processor.tick_interval_s), soft_wrap=True)
    out.print("end offsets: where a fetch reports end of partition (not ListOffsets, which some brokers report low)")


@offsets_app.command("reset")
def offsets_reset(
    ctx: typer.Context,
    group: Annotated[str, typer.Option(help="The consumer group, e.g. preflog-processor or preflog-sink.")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="Re-read everything still in the topics.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="Skip to the end.")] = False,
    to_datetime: Annotated[str | None, typer.Option(help="First offset at or after this ISO-8601 time.")] = None,
    to_offset: Annotated[
        list[str] | None,
        typer.Option(
            help=r"Explicit \[TOPIC:]\[PARTITION=]OFFSET, e.g. preflog.pairs.v1:0=3 "
            "(repeatable; the most specific wins)."
        ),
    ] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics (repeatable).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a stopped group's offsets. Refuses while the group has live members.

    Example: preflog offsets reset --group preflog-sink --to-datetime 2026-11-01T00:00:00Z --yes
    """
    from ..kafka.offsets import OffsetSpecError, ensure_idle, parse_offset_spec, plan_reset, reset
    from ..schemas.events import to_datetime as parse_time

    settings = settings_of(ctx)
    given: dict[ResetMode, bool] = {
        "earliest": to_earliest,
        "latest": to_latest,
        "datetime": bool(to_datetime),
        "explicit": bool(to_offset),
    }
    modes = [mode for mode, on in given.items() if on]
    if len(modes) != 1:
        raise typer.BadParameter("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")
    try:
        specs = [parse_offset_spec(spec) for spec in to_offset or []]
    except OffsetSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to-offset") from None
    when = parse_time(to_datetime) if to_datetime else None
    topics = topic or settings.groups().get(group, [])
    ensure_idle(settings.kafka.client_config(), group)  # before the plan and the question, not after
    plan = plan_reset(settings.kafka.client_config(), topics, modes[0], when, specs)
    table = Table("topic", "partition", "new offset", title=f"reset group {group} ({modes[0]})")
    for (t, p), off in sorted(plan.items()):
        table.add_row(t, str(p), str(off))
    out.print(table)
    if not yes and not typer.confirm(f"Reset {len(plan)} partition(s) of {group}?"):
        raise typer.Exit(1)
    reset(settings.kafka.client_config(), group, plan)
    out.print(f"reset {len(plan)} partition(s) of {group}")
