"""The ``preflog`` command line. Every subcommand has ``--help``.

Settings come from ``PREFLOG_*`` environment variables; the global flags
below override them for one run.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .connect import SERVICES, CommandGroup, StackDiscovery, command_args, may_use_broker, needs_broker
from .console import console, out, override, progress_bar, settings_of
from .errors import PreflogError
from .reconcile_command import reconcile
from .replay_command import replay
from .schemas.tables import TOPIC_RECORDS
from .settings import load_settings
from .up_command import up

__all__ = ["app", "main"]

app = typer.Typer(
    cls=CommandGroup,
    help="preflog: log preference pairs (prompt, chosen, rejected + provenance) from Kafka to an audit log.\n\n"
    "Start here: `preflog up --demo` runs the whole pipeline on this machine.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create and inspect preflog's Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
offsets_app = typer.Typer(
    help="Show and reset the consumer-group offsets of preflog's processes.", no_args_is_help=True
)
app.add_typer(offsets_app, name="offsets")


@app.callback()
def _main(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers", "-b", help="Kafka brokers, host:port[,...]. Env: PREFLOG_KAFKA__BOOTSTRAP_SERVERS."
        ),
    ] = None,
    framing: Annotated[
        str | None,
        typer.Option(help="single-object (default; schemas from schemas/) or confluent (needs --schema-registry-url)."),
    ] = None,
    schema_registry_url: Annotated[str | None, typer.Option(help="Schema Registry URL for framing=confluent.")] = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of topics preflog creates. Env: PREFLOG_TOPICS__PARTITIONS.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded stack keeps data and logs (default .preflog).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command, args = ctx.invoked_subcommand, command_args(ctx)
    discovery = StackDiscovery() if command != "up" else None  # `up` starts its own broker
    settings = load_settings(
        {
            "kafka": {"bootstrap_servers": bootstrap_servers},
            "codec": {"framing": framing, "schema_registry_url": schema_registry_url},
            "topics": {"partitions": partitions},
            "data_dir": data_dir,
        },
        discover=discovery,
    )
    if discovery is not None and discovery.found is not None and may_use_broker(command, args):
        console.print(f"using the stack of preflog up: {discovery.found.describe()}", style="dim", soft_wrap=True)
    if needs_broker(command, args):
        from .deploy.probe import check_broker

        if not verbose and command not in SERVICES and "log_level" not in settings.kafka.extra:
            # librdkafka's connection lines (e.g. "Disconnected" at shutdown) only with --verbose
            kafka = settings.kafka.model_copy(update={"extra": {**settings.kafka.extra, "log_level": "0"}})
            settings = settings.model_copy(update={"kafka": kafka})
        check_broker(settings.kafka.client_config(), where=discovery.where() if discovery else "", quiet=not verbose)
    ctx.obj = settings


@app.command()
def produce(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="Events as JSON lines or Parquet ('-' = JSON lines on stdin).", allow_dash=True)
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; send nothing.")] = False,
    rate: Annotated[float, typer.Option(help="At most this many events per second (0 = no limit).")] = 0.0,
    progress_file: Annotated[
        Path | None, typer.Option(help="Ids of confirmed events, to resume (default FILE.progress).")
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore the progress file and send everything.")] = False,
) -> None:
    """Validate events from FILE and send the valid ones; report the rest with reasons.

    Backfills keep their original event times. Interrupt with Ctrl-C at any time and run the same
    command again: events already confirmed by the broker (FILE.progress) are not sent twice.
    Examples: preflog produce events.jsonl ; preflog produce history.parquet --rate 500
    """
    import signal

    from .producers.client import PreflogProducer
    from .producers.files import count_events, read_lines, read_parquet
    from .producers.load import produce_lines
    from .producers.progress import Progress

    settings = settings_of(ctx)
    stdin = str(file) == "-"
    if not stdin and not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    lines = (
        read_lines(sys.stdin)
        if stdin
        else (read_parquet(file) if file.suffix == ".parquet" else read_lines(file.open(encoding="utf-8")))
    )
    progress = None if stdin or dry_run else Progress(progress_file or Path(f"{file}.progress"), restart)
    if progress is not None and progress.done:
        out.print(f"resuming: {len(progress.done)} events already sent (recorded in {progress.path})")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    producer = PreflogProducer.from_settings(settings)
    try:
        with progress_bar() as bar:
            task = bar.add_task("validating" if dry_run else "producing", total=None if stdin else count_events(file))
            report = produce_lines(
                producer, lines, dry_run, on_line=lambda _: bar.advance(task), progress=progress, rate=rate, stop=stop
            )
    finally:
        undelivered = producer.close()
        if progress is not None:
            progress.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    table = Table(title="preflog produce", show_header=False)
    table.add_row("valid" if dry_run else "sent", str(report.sent if not dry_run else "all but rejected"))
    if not dry_run:
        table.add_row("delivered", str(report.delivered))
        table.add_row("delivery failures", str(len(report.failed) + undelivered))
        table.add_row("skipped (sent by an earlier run)", str(report.skipped))
    table.add_row("rejected lines", str(len(report.rejected)))
    out.print(table)
    for field, n in report.by_reason().most_common():
        out.print(f"  {n:6d} x {field}")
    for number, problems in report.rejected[:20]:
        out.print(f"  line {number}: {'; '.join(problems)}")
    if len(report.rejected) > 20:
        out.print(f"  ... and {len(report.rejected) - 20} more")
    if report.interrupted:
        out.print("interrupted: run the same command again to send the rest")
        raise typer.Exit(130)
    if report.failed or undelivered:
        raise typer.Exit(2)
    if report.rejected:
        raise typer.Exit(1)


@app.command()
def generate(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(help="Inference events to generate.")] = 200,
    rate: Annotated[float, typer.Option(help="Requests per second (event time, and wall time unless --fast).")] = 20.0,
    fast: Annotated[
        bool, typer.Option("--fast", help="Send as fast as possible (event times still follow --rate).")
    ] = False,
    candidates: Annotated[str, typer.Option(help="Candidates per prompt, MIN-MAX.")] = "2-4",
    feedback_delay: Annotated[float, typer.Option(help="Mean feedback delay in seconds (exponential).")] = 3.0,
    no_feedback: Annotated[float, typer.Option(help="Share of requests that never get feedback.")] = 0.10,
    duplicates: Annotated[float, typer.Option(help="Share of feedback delivered twice.")] = 0.03,
    out_of_order: Annotated[float, typer.Option(help="Share of feedback sent before its inference.")] = 0.05,
    invalid: Annotated[
        float, typer.Option(help="Share of feedback that is invalid (garbage bytes, bad indices).")
    ] = 0.02,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same events.")] = 7,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write JSON lines here instead of sending to Kafka.")
    ] = None,
) -> None:
    """Make realistic synthetic traffic: inference, feedback of every kind, and the mess production brings.

    Examples: preflog generate --requests 1000 --fast ; preflog generate --out events.jsonl
    """
    from .producers.generator import TrafficProfile
    from .producers.generator import generate as make_events

    low, _, high = candidates.partition("-")
    profile = TrafficProfile(
        requests=requests,
        rate=rate,
        candidates_min=int(low),
        candidates_max=int(high or low),
        feedback_delay_s=feedback_delay,
        no_feedback=no_feedback,
        duplicates=duplicates,
        out_of_order=out_of_order,
        invalid=invalid,
        seed=seed,
    )
    events = make_events(profile)
    if out_file is not None:
        from .producers.files import dump_event

        with out_file.open("w", encoding="utf-8") as f:
            for e in events:
                if e.record is not None:
                    dump_event(e.event_type, e.record, f)
                else:
                    f.write("{garbage: not json\n")
        out.print(f"wrote {len(events)} events to {out_file}")
        return
    from .producers.client import PreflogProducer
    from .producers.traffic import send_traffic

    settings = settings_of(ctx)
    producer = PreflogProducer.from_settings(settings)
    try:
        with progress_bar() as progress:
            task = progress.add_task("sending", total=len(events))
            sent = send_traffic(events, producer, pace=not fast, on_event=lambda _: progress.advance(task))
    finally:
        producer.close()
    out.print(
        "sent " + ", ".join(f"{n} {k}" for k, n in sorted(sent.items())) + f" to {settings.kafka.bootstrap_servers}"
    )


@app.command()
def process(
    ctx: typer.Context,
    window: Annotated[float | None, typer.Option(help="Join window in seconds (default 3600).")] = None,
    grace: Annotated[float | None, typer.Option(help="Grace for out-of-order records, seconds (default 300).")] = None,
    score_margin: Annotated[
        float | None, typer.Option(help="SCORES pairs need a larger difference (default 0).")
    ] = None,
    score_mode: Annotated[str | None, typer.Option(help="all (default) or best-vs-worst.")] = None,
    store: Annotated[str | None, typer.Option(help="Table store: rocksdb:// (default) or memory://.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where table files live (default <data-dir>/processor).")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9464, 0 = off).")] = None,
    app_id: Annotated[str | None, typer.Option(help="Consumer group / app id (default preflog-processor).")] = None,
    loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "warning",
) -> None:
    """Run the join worker: feedback joined to inference on request_id, emitting preference pairs.

    Outputs: pairs, unpaired signals (ratings, implicit), unmatched (with reason) and dead-letter topics.
    Run more workers with the same --app-id to split the partitions. Env: PREFLOG_PROCESSOR__*.
    """
    from .processors.run import run_worker

    settings = settings_of(ctx)
    overrides = {
        "window_s": window,
        "grace_s": grace,
        "score_margin": score_margin,
        "score_mode": score_mode,
        "store": store,
        "state_dir": state_dir,
        "metrics_port": metrics_port,
        "app_id": app_id,
    }
    settings = override(settings, "processor", overrides)
    run_worker(settings, loglevel)


@app.command()
def sink(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Audit log root: file:///path or s3://bucket/prefix.")] = None,
    partition_by: Annotated[
        list[str] | None, typer.Option(help="Extra partition column after dt=, e.g. model.name (repeatable).")
    ] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint (MinIO, moto...).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9465, 0 = off).")] = None,
) -> None:
    """Write the output topics to the audit log: immutable Parquet files, offsets committed after each write.

    Layout: <url>/<table>/dt=YYYY-MM-DD/<topic>+<partition>+<first>-<last>.parquet, each with a
    manifest (rows, offsets, sha256) at <url>/_manifests/<same path>.json. Env: PREFLOG_SINK__*;
    S3 credentials from the AWS chain or PREFLOG_SINK__AWS_ACCESS_KEY_ID / PREFLOG_SINK__AWS_SECRET_ACCESS_KEY.
    """
    from .sinks.run import run_sink

    settings = settings_of(ctx)
    overrides = {
        "url": url,
        "partition_by": partition_by,
        "s3_endpoint_url": s3_endpoint_url,
        "metrics_port": metrics_port,
    }
    settings = override(settings, "sink", overrides)
    run_sink(settings)


@app.command()
def verify(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(help="Audit log root (default: the sink's, <data-dir>/audit).")] = None,
) -> None:
    """Check the audit log: missing or altered files, offset gaps, files without manifest, duplicate ids.

    Exit code 0 when everything checks out, 1 when anything is wrong.
    """
    from .sinks.storage import Storage
    from .sinks.verify import verify as run_verify

    settings = settings_of(ctx)
    root = url or settings.audit_url()
    storage = Storage(root, settings.sink.storage_options())
    with progress_bar() as progress:
        task = progress.add_task("verifying", total=None)
        report = run_verify(storage, on_file=lambda _: progress.advance(task))
    table = Table(title=f"preflog verify {root}", show_header=False)
    table.add_row("files checked", str(report.files))
    table.add_row("rows", str(report.rows))
    problems = [
        ("missing file (manifest without data)", report.missing_files),
        ("checksum mismatch (altered file)", report.checksum_mismatches),
        ("data file without manifest", report.without_manifest),
        ("offset gap", report.gaps),
        ("overlapping ranges", report.overlaps),
        ("duplicate ids", [f"{t}: {n}" for t, n in report.duplicate_ids.items()]),
    ]
    for label, items in problems:
        table.add_row(label, str(len(items)))
    out.print(table)
    for label, items in problems:
        for item in items[:50]:
            out.print(f"  {label}: {item}", soft_wrap=True, markup=False, highlight=False)
    for note in report.notes:
        out.print(f"  note: {note}", soft_wrap=True, markup=False, highlight=False)
    out.print("OK" if report.ok else "PROBLEMS FOUND")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[str, typer.Argument(help="Where to write JSON lines: a path or a URL (s3://...).")],
    fmt: Annotated[str, typer.Option("--format", help="trl, trl-conversational, openai or kto.")] = "trl",
    url: Annotated[str | None, typer.Option(help="Audit log root (default: the sink's).")] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (inclusive).")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these model names (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these source types, e.g. HUMAN_ANNOTATOR.")] = None,
) -> None:
    """Export pairs (or, with --format kto, unpaired signals) to a training format as JSON lines.

    Example: preflog export train.jsonl --format trl --start 2026-11-01 --source HUMAN_ANNOTATOR
    """
    from .sinks.export import FORMATS, export_rows, write_jsonl
    from .sinks.read import read_pairs

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose one of {', '.join(FORMATS)}", param_hint="--format")
    settings = settings_of(ctx)
    root = url or settings.audit_url()
    options = settings.sink.storage_options()
    rows = read_pairs(root, start, end, model, source, table=FORMATS[fmt][0], storage_options=options)
    with progress_bar() as progress:
        task = progress.add_task(f"exporting {fmt}", total=rows.num_rows)
        n = write_jsonl(
            export_rows(rows, fmt),
            output,
            on_row=lambda: progress.advance(task),
            storage_options=options if "://" in output else None,
        )
    out.print(f"wrote {n} {fmt} rows to {output}")


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create every preflog topic that does not exist yet, with --partitions partitions."""
    from .deploy.topics import ensure_topics

    s = settings_of(ctx)
    created = ensure_topics(
        s.kafka.client_config(), s.topics.all().values(), s.topics.partitions, s.topics.replication_factor
    )
    out.print(f"created {len(created)} topic(s): {', '.join(created) or 'none, all exist'}")


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """Show preflog's topics and their partition counts."""
    from .deploy.topics import partition_counts

    s = settings_of(ctx)
    counts = partition_counts(s.kafka.client_config(), s.topics.all().values())
    table = Table("role", "topic", "partitions")
    for role, topic in s.topics.all().items():
        table.add_row(role, topic, str(counts.get(topic, "missing")))
    out.print(table)


@offsets_app.command("show")
def offsets_show(
    ctx: typer.Context,
    group: Annotated[
        list[str] | None, typer.Option(help="Only this group (repeatable); default: all of preflog's.")
    ] = None,
) -> None:
    """Committed offset, end offset and lag per partition, for the processor's and the sink's groups."""
    from .deploy.offsets import describe

    settings = settings_of(ctx)
    groups = settings.groups()
    for name in group or list(groups):
        info = describe(settings.kafka.client_config(), name, groups.get(name, []))
        table = Table(
            "topic",
            "partition",
            "committed",
            "end",
            "lag",
            title=f"group {name}: {info.state.lower()}, {info.members} member(s)",
        )
        for row in info.partitions:
            committed = "-" if row.committed is None else str(row.committed)
            table.add_row(
                row.topic, str(row.partition), committed, str(row.end), "-" if row.lag is None else str(row.lag)
            )
        out.print(table)
    out.print("end offsets: where a fetch reports end of partition (not ListOffsets, which some brokers report low)")


@offsets_app.command("reset")
def offsets_reset(
    ctx: typer.Context,
    group: Annotated[str, typer.Option(help="The consumer group, e.g. preflog-processor or preflog-sink.")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="Re-read everything still in the topics.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="Skip to the end.")] = False,
    to_datetime: Annotated[str | None, typer.Option(help="First offset at or after this ISO-8601 time.")] = None,
    to_offset: Annotated[list[str] | None, typer.Option(help="Explicit TOPIC:PARTITION=OFFSET (repeatable).")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics (repeatable).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a stopped group's offsets. Refuses while the group has live members.

    Example: preflog offsets reset --group preflog-sink --to-datetime 2026-11-01T00:00:00Z --yes
    """
    from .deploy.offsets import reset, target_offsets
    from .schemas.events import to_datetime as parse_time

    settings = settings_of(ctx)
    modes = [
        m
        for m, on in (
            ("earliest", to_earliest),
            ("latest", to_latest),
            ("datetime", bool(to_datetime)),
            ("explicit", bool(to_offset)),
        )
        if on
    ]
    if len(modes) != 1:
        raise typer.BadParameter("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")
    topics = topic or settings.groups().get(group, [])
    explicit = {}
    for spec in to_offset or []:
        where, _, offset = spec.rpartition("=")
        name, _, partition = where.rpartition(":")
        if not (name and partition.isdigit() and offset.isdigit()):
            raise typer.BadParameter(f"{spec!r}; expected TOPIC:PARTITION=OFFSET", param_hint="--to-offset")
        explicit[(name, int(partition))] = int(offset)
        topics = list(dict.fromkeys([*topics, name]))
    from .deploy.topics import partition_counts

    counts = partition_counts(settings.kafka.client_config(), topics)
    tps = [(t, p) for t in topics for p in range(counts.get(t, 0))]
    when = parse_time(to_datetime) if to_datetime else None
    plan = target_offsets(settings.kafka.client_config(), tps, modes[0], when, explicit)
    table = Table("topic", "partition", "new offset", title=f"reset group {group} ({modes[0]})")
    for (t, p), off in sorted(plan.items()):
        table.add_row(t, str(p), str(off))
    out.print(table)
    if not yes and not typer.confirm(f"Reset {len(plan)} partition(s) of {group}?"):
        raise typer.Exit(1)
    reset(settings.kafka.client_config(), group, plan)
    out.print(f"reset {len(plan)} partition(s) of {group}")


@app.command()
def tail(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="Which topic: " + ", ".join(TOPIC_RECORDS))],
    limit: Annotated[int, typer.Option("--max", help="Stop after this many records (0 = follow).")] = 10,
    timeout: Annotated[float, typer.Option(help="Stop after this many idle seconds.")] = 5.0,
) -> None:
    """Print records of a preflog topic from the beginning, decoded, as JSON lines."""
    from confluent_kafka import Consumer, TopicPartition

    from .deploy.topics import partition_counts
    from .producers.files import json_default

    if role not in TOPIC_RECORDS:
        raise typer.BadParameter(f"{role!r}; choose one of {', '.join(TOPIC_RECORDS)}", param_hint="ROLE")
    s = settings_of(ctx)
    topic = s.topics.all()[role]
    n = partition_counts(s.kafka.client_config(), [topic]).get(topic)
    if n is None:
        raise PreflogError(f"topic {topic} does not exist on {s.kafka.bootstrap_servers}; run `preflog topics create`")
    codec = s.make_codec()
    consumer = Consumer({**s.kafka.client_config(), "group.id": "preflog-tail", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(n)])
    shown = 0
    try:
        while limit == 0 or shown < limit:
            msg = consumer.poll(timeout)
            if msg is None:
                break
            if msg.error():
                continue
            try:
                record: Any = codec.decode(msg.value() or b"", TOPIC_RECORDS[role], topic)
            except PreflogError as exc:
                record = {"undecodable": str(exc), "value_hex": (msg.value() or b"").hex()}
            out.print_json(json.dumps(record, default=json_default)) if out.is_terminal else print(
                json.dumps(record, default=json_default)
            )
            shown += 1
    finally:
        consumer.close()


app.command()(replay)
app.command()(reconcile)
app.command()(up)


def main() -> None:
    """Console entry point: PreflogErrors print their message, not a traceback."""
    try:
        app()
    except PreflogError as exc:
        console.print("[bold red]error:[/] ", end="")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
