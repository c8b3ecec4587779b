"""``preflog replay``: rebuild the join's outputs for a range of the input topics into a separate prefix."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from ..schemas.tables import TABLES
from .console import console, out, progress_bar, settings_of

if TYPE_CHECKING:  # Kafka clients are imported only when the command runs
    from ..processors.ranges import Range

__all__ = ["replay"]


def _time(value: str | None, flag: str) -> int | None:
    """``value`` (ISO 8601) in epoch milliseconds; None stays None."""
    from ..schemas.events import to_datetime

    if value is None:
        return None
    try:
        when = to_datetime(value)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(
            f"{value!r} is not an ISO date-time (e.g. 2026-11-01T00:00:00Z)", param_hint=flag
        ) from exc
    return int(when.timestamp() * 1000)


def replay(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option(help="Name of this replay: its output folder and consumer group (default: now, UTC).")
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="Output root URL (default <audit log>/_replays/<name>); never the live log.")
    ] = None,
    from_time: Annotated[
        str | None, typer.Option("--from", help="Only records written to Kafka at or after this time (ISO 8601).")
    ] = None,
    to_time: Annotated[
        str | None, typer.Option("--to", help="Only records written to Kafka before this time (ISO 8601).")
    ] = None,
    start_offset: Annotated[
        list[str] | None,
        typer.Option(
            help=r"First offset: \[inference:|feedback:]\[PARTITION=]OFFSET (repeatable; the most specific wins)."
        ),
    ] = None,
    end_offset: Annotated[
        list[str] | None, typer.Option(help="Offset to stop before, same form as --start-offset (default: log end).")
    ] = None,
    partition: Annotated[list[int] | None, typer.Option(help="Only this partition (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; read and write nothing.")] = False,
) -> None:
    """Re-run the join over a range of the inference and feedback topics and write a separate audit log.

    The same range always gives the same pairs (pair_id and every column) as
    the live pipeline: the window applies to event time, and the two topics
    are merged per partition in a fixed order (record timestamp, inference
    first, offset). Output goes to <audit log>/_replays/<name>, laid out like
    the live log (read it with preflog.read_pairs or preflog export --url).

    --from/--to select by Kafka record timestamp (when records were written),
    not by event_time. A range that selects no record exits with code 1 and
    says why: each partition's offsets (or record times) beside the asked
    range. For example:

      preflog replay --dry-run

      preflog replay --name nov --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z

      preflog replay --partition 3 --start-offset 3=120000 --end-offset feedback:3=200000
    """
    from ..processors.ranges import parse_offset_spec, plan
    from ..processors.replay import Replay, ensure_unused, replay_group, replay_output
    from ..sinks.storage import Storage

    settings = settings_of(ctx)
    t = settings.topics
    name = name or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = replay_output(settings.audit_url(), name, output)
    group = replay_group(settings, name)
    ranges = plan(
        settings.kafka.client_config(),
        {"inference": t.inference, "feedback": t.feedback},
        partition,
        [parse_offset_spec(s) for s in start_offset or []],
        [parse_offset_spec(s) for s in end_offset or []],
        _time(from_time, "--from"),
        _time(to_time, "--to"),
    )
    table = Table("topic", "partition", "start", "end", "records", title=f"replay {name}")
    for r in ranges:
        table.add_row(r.topic, str(r.partition), str(r.start), str(r.end), str(r.planned))
    out.print(table)
    planned = sum(r.planned for r in ranges)
    window = (
        f"from {from_time or 'the start'} to {to_time or 'the end'} (record timestamps); "
        if (from_time or to_time)
        else ""
    )
    out.print(f"{planned} records to read; {window}output {target}; consumer group {group}", soft_wrap=True)
    storage = None if dry_run else Storage(target, settings.sink.storage_options())
    if storage is not None:
        ensure_unused(storage, target)
    if not planned:
        asked = f" ({window.removesuffix('; ')})" if window else ""
        _nothing_selected(f"no partition has a record in the asked range{asked}", [_offsets(r) for r in ranges])
    for r in ranges:
        if r.log_end is not None and r.start > r.log_end:
            out.print(f"note: {_offsets(r)}: nothing to read there", soft_wrap=True, markup=False)
    if storage is None:
        out.print("dry run: nothing was read or written")
        return
    by_partition: dict[int, int] = {}
    for r in ranges:
        by_partition[r.partition] = by_partition.get(r.partition, 0) + r.planned
    with progress_bar() as bar:
        tasks = {p: bar.add_task(f"partition {p}", total=n) for p, n in sorted(by_partition.items())}
        summary = Replay(settings, ranges, storage, group, on_progress=lambda p, n: bar.advance(tasks[p], n)).run()
    result = Table("", "count", title=f"replay {name}: done in {summary.seconds:.1f} s")
    for role, n in sorted(summary.events_read.items()):
        result.add_row(f"{role} events read", str(n))
    if summary.filtered_out:
        result.add_row("outside --from/--to", str(summary.filtered_out))
    for role in TABLES:
        result.add_row(f"{role} written", str(summary.written[role]))
    for reason, n in sorted(summary.unmatched.items()):
        result.add_row(f"  unmatched {reason}", str(n))
    for error, n in sorted(summary.dead_letters.items()):
        result.add_row(f"  dead letters {error}", str(n))
    result.add_row("duplicates ignored", str(summary.duplicates))
    result.add_row("inferences still in their window at the end", str(summary.open_inferences))
    result.add_row("  of which without feedback so far", str(summary.open_without_feedback))
    result.add_row("feedback still waiting for its inference", str(summary.waiting_feedback))
    result.add_row("files", str(summary.files))
    out.print(result)
    if not summary.selected:
        asked = f"from {from_time or 'the start'} to {to_time or 'the end'}"
        _nothing_selected(
            f"none of the {summary.filtered_out} records read was written to Kafka {asked} (--from/--to: record "
            "timestamps); nothing was written",
            [_times(r, summary.outside_ms.get((r.role, r.partition))) for r in ranges if r.planned],
        )
    if not summary.written["pairs"]:
        out.print(f"no pairs written: {summary.selected} records selected, none decided a pair (see above)")
    else:
        out.print(f"read it: preflog.read_pairs({target!r})  or  preflog export pairs.jsonl --url {target}",
                  soft_wrap=True)  # fmt: skip
    if summary.files:
        console.print(f"verify it: preflog verify {target}", soft_wrap=True)


def _nothing_selected(why: str, partitions: list[str]) -> NoReturn:
    """Say that the replay selected nothing, why and per partition, and exit with code 1."""
    out.print(f"nothing selected: {why}.", soft_wrap=True, markup=False)
    for line in partitions:
        out.print(f"  {line}", soft_wrap=True, markup=False)
    raise typer.Exit(1)


def _offsets(r: Range) -> str:
    """A range's partition, what it holds and what was asked of it, e.g. "holds offsets 0-851; asked 900-852"."""
    where = f"{r.role} partition {r.partition} ({r.topic})"
    if r.low is None or r.log_end is None:
        return f"{where}: asked offsets {r.start}-{r.end - 1}"
    if r.log_end <= r.low:
        return f"{where}: holds no records"
    holds = f"holds offsets {r.low}-{r.log_end - 1}"
    if r.start > r.log_end:
        return f"{where}: {holds}; --start-offset {r.start} is past its end ({r.log_end})"
    if r.planned:
        return f"{where}: {holds}; asked {r.start}-{r.end - 1}"
    if r.from_ms is not None and r.start == r.log_end > r.low:
        return f"{where}: {holds}; none written at or after --from"
    return f"{where}: {holds}; asked from {r.start} to before {r.end}"


def _times(r: Range, span: tuple[int, int] | None) -> str:
    """A partition's records and when they were written, e.g. "offsets 0-851 written 2026-12-07T10:00:01Z to ..."."""
    where = f"{r.role} partition {r.partition} ({r.topic}): offsets {r.start}-{r.end - 1}"
    if span is None:
        return where
    return f"{where}, written {_iso(span[0])}" + (f" to {_iso(span[1])}" if span[1] != span[0] else "")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
