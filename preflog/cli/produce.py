"""``preflog produce`` and ``preflog generate``: events into the input topics."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import out, progress_bar, settings_of

__all__ = ["generate", "produce"]


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

    from ..producers.client import PreflogProducer
    from ..producers.files import count_events, read_lines, read_parquet
    from ..producers.load import produce_lines
    from ..producers.progress import Progress

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
    table.add_row("valid" if dry_run else "sent", str(report.valid if dry_run else report.sent))
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
    conversations: Annotated[
        float, typer.Option(help="Share of inference events that are turns of multi-turn conversations.")
    ] = 0.15,
    trajectories: Annotated[float, typer.Option(help="Share of requests answered by an agent with tools.")] = 0.10,
    images: Annotated[
        float, typer.Option(help="Share of requests asking about an image (PNGs written under <data-dir>/images).")
    ] = 0.10,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write JSON lines here instead of sending to Kafka.")
    ] = None,
) -> None:
    """Make realistic synthetic traffic: inference, feedback of every kind, and the mess production brings.

    Besides single questions: conversations (later turns by reference to the turn before), agent
    trajectories with tool calls, and questions about images written under <data-dir>/images
    (a few references broken on purpose: a wrong sha256 or a file never written).

    Examples: preflog generate --requests 1000 --fast ; preflog generate --out events.jsonl
    """
    from ..producers.generator import TrafficProfile
    from ..producers.generator import generate as make_events

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
        conversations=conversations,
        trajectories=trajectories,
        images=images,
    )
    settings = settings_of(ctx)
    events = make_events(profile, image_dir=Path(settings.data_dir) / "images")
    if out_file is not None:
        from ..producers.files import dump_event

        with out_file.open("w", encoding="utf-8") as f:
            for e in events:
                if e.record is not None:
                    dump_event(e.event_type, e.record, f)
                else:
                    f.write("{garbage: not json\n")
        out.print(f"wrote {len(events)} events to {out_file}")
        return
    from ..producers.client import PreflogProducer
    from ..producers.traffic import send_traffic

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
