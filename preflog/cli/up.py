"""``preflog up``: the whole pipeline on this machine, with live progress, stopped cleanly by any stop signal."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..settings import Settings
from .console import out, settings_of

__all__ = ["up"]

SIGNAL_NAMES = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGHUP": "terminal closed, SIGHUP"}


def _say(text: str) -> None:
    """Print to stdout, or nowhere if stdout is gone (closed pipe or terminal): a stop must finish anyway."""
    with contextlib.suppress(OSError):
        out.print(text, soft_wrap=True, markup=False, highlight=False)


class ProgressView:
    """One progress line: a rich Live line refreshed every tick on a terminal, else plain lines (a log file).

    The plain lines are checked every ``every`` s and written when the status changed, or once per ``idle_s``
    with "(no change)" while nothing flows. PREFLOG_PROGRESS=0 asks for the plain lines on a terminal too.
    """

    def __init__(
        self,
        status: Callable[[], str],
        clock: Callable[[], str],
        every: float = 5.0,
        idle_s: float = 300.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        from ..deploy.progress import QuietLines

        self.status, self.clock, self.every, self.now = status, clock, every, now
        self.live: Live | None = None
        self._next = now() + every
        self._quiet = QuietLines(idle_s)
        self._interactive = out.is_terminal and os.environ.get("PREFLOG_PROGRESS") != "0"

    def line(self) -> str:
        return f"{self.clock()}  {self.status()}"

    def __enter__(self) -> ProgressView:
        if self._interactive:
            # No refresh thread: the line is redrawn from tick(), in the main thread, so a stop never races it.
            self.live = Live(Text(""), console=out, auto_refresh=False, transient=False)
            self.live.start()
        return self

    def tick(self) -> None:
        if self.live is not None:
            self.live.update(Text(self.line()), refresh=True)
        elif self.now() >= self._next:
            self._next += self.every
            status, repeated = self.status(), self._quiet.last
            if self._quiet.due(status, self.now()):
                _say(f"{self.clock()}  {status}" + ("  (no change)" if status == repeated else ""))

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            with contextlib.suppress(OSError):
                self.live.stop()
        else:
            _say(self.line())  # the last counts, however short the run


def _stack_table(settings: Settings, stack: object) -> Table:
    from ..deploy.stack import Stack

    assert isinstance(stack, Stack) and stack.broker is not None and stack.record is not None
    table = Table("what", "where", title="preflog up")
    table.add_row("Kafka-protocol broker (Tansu)", f"{settings.kafka.bootstrap_servers}  log: {stack.broker.log_path}")
    table.add_row("broker incarnation", f"{stack.record.incarnation} (new and empty: its log is in memory)")
    for service in stack.services:
        names = {"processor": "processor (Faust join)", "sink": "sink (audit log)", "api": "ingestion API (HTTP)"}
        label = names.get(service.name, service.name)
        table.add_row(label, f"{service.where}  log: {service.log}")
    for role, topic in settings.topics.all().items():
        table.add_row(f"topic: {role}", f"{topic} ({settings.topics.partitions} partitions)")
    table.add_row("data directory", f"{settings.data_dir.resolve()}  (stack.json: where this stack runs)")
    return table


def _report(settings: Settings, counts: Mapping[str, int] | None, sent: Mapping[str, int], earlier: int) -> None:
    try:
        if counts is not None:
            summary = Table("topic", "records", title="records seen on the broker")
            for role, topic in settings.topics.all().items():
                if role != "ticks":
                    summary.add_row(topic, str(counts.get(role, 0)))
            out.print(summary)
    except OSError:
        return
    if sent:
        _say("demo sent " + ", ".join(f"{n} {k}" for k, n in sorted(sent.items())))
    from ..deploy.progress import count_audit_files

    audit = settings.audit_url()
    files = count_audit_files(audit, settings.sink.storage_options())
    _say(f"stopped; data and logs under {settings.data_dir.resolve()}")
    _say(f"Parquet files written by this run: {max(0, files - earlier)} ({files} in the audit log)")
    _say(f"Parquet audit log: {audit}. Read it with:")
    hints = [
        f"python -c \"import preflog; t = preflog.read_pairs('{audit}'); print(t.num_rows, t.to_pylist()[0])\"",
        f"preflog --data-dir {settings.data_dir} export pairs.jsonl --format trl  # or trl-conversational, openai, kto",
        f"preflog --data-dir {settings.data_dir} verify",
    ]
    for hint in hints:
        _say(f"  {hint}")


def up(
    ctx: typer.Context,
    demo: Annotated[bool, typer.Option("--demo", help="Also run the traffic generator.")] = False,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0 = run until Ctrl-C).")] = 0.0,
    requests: Annotated[int, typer.Option(help="With --demo: inference events to generate.")] = 200,
    rate: Annotated[float, typer.Option(help="With --demo: requests per second.")] = 20.0,
    seed: Annotated[
        int | None,
        typer.Option(help="With --demo: the generator's seed (default: a new one each run, so runs add new requests)."),
    ] = None,
    via: Annotated[
        str, typer.Option(help="With --demo: send through the Python SDK (sdk) or the HTTP ingestion API (api).")
    ] = "sdk",
) -> None:
    """Start preflog on this machine: embedded Kafka-protocol broker (Tansu), topics, processor, sink and HTTP API.

    Data and logs go under --data-dir; <data-dir>/stack.json says where the stack runs, so other
    commands started from the same directory find its broker without an exported address.
    Ctrl-C, SIGTERM or closing the terminal stops everything cleanly (a second signal: at once);
    the broker, processor and sink never outlive this command, even if it is killed.
    The embedded broker keeps its log in memory: each `up` starts a new, empty broker (a new
    incarnation); the audit log stays, and the sink starts a new file sequence beside earlier runs'.
    The HTTP ingestion API listens on api.port (8787, else a free port; the URL is in <data-dir>/api.url)
    with a dev key made once and kept in <data-dir>/api/dev-key (tenant dev; never for production).
    With --demo the join window is 20 s (+5 s grace, 5 s idle) so unmatched records show up quickly;
    --via api sends the demo's traffic through the HTTP API instead of the SDK. The demo's traffic holds
    single questions, conversations, agent trajectories with tool calls and questions about images
    (small PNGs written under <data-dir>/images).
    Example: preflog up --demo --duration 30
    """
    if via not in ("sdk", "api"):
        raise typer.BadParameter(f"{via!r}: choose sdk or api", param_hint="--via")
    from ..deploy.api import dev_key, start_api
    from ..deploy.flow import FlowMonitor
    from ..deploy.progress import FlowProgress, count_audit_files
    from ..deploy.signals import Stopping, StopSignals
    from ..deploy.stack import Stack

    with StopSignals() as signals:
        stack = Stack(_demo_privacy(settings_of(ctx)) if demo else settings_of(ctx))
        settings = stack.settings
        stop = threading.Event()
        sender: threading.Thread | None = None
        sent: dict[str, int] = {}
        monitor: FlowMonitor | None = None
        options = settings.sink.storage_options()
        earlier = 0
        try:
            earlier = count_audit_files(settings.audit_url(), options)
            settings = stack.start()
            stack.start_processor(**({"window_s": 20.0, "grace_s": 5.0, "idle_timeout_s": 5.0} if demo else {}))
            stack.start_sink(**({"idle_flush_s": 3.0} if demo else {}))
            key, key_file, _ = dev_key(settings.data_dir, settings.api.keys_file)
            _, api_url = start_api(stack)
            stack.publish_metrics()
            out.print(_stack_table(settings, stack))
            _say(f"API {api_url} (OpenAPI: {api_url}/openapi.json); dev key of tenant dev, in {key_file} (dev only):")
            _say(f"  {key}")
            out.print(
                f"Other commands run from here find this stack (stack.json); from elsewhere: "
                f"export PREFLOG_KAFKA__BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers}",
                soft_wrap=True,
            )
            if earlier:
                _say(
                    f"the audit log holds {earlier} files from earlier runs; "
                    "this broker is new, so the sink starts a new file sequence"
                )
            monitor = FlowMonitor(settings.kafka.client_config(), settings.topics.all(), settings.topics.partitions)
            monitor.start()
            if demo:
                through = (api_url, key) if via == "api" else None
                sender = _start_demo(settings, requests, rate, seed, stop, sent, through)
            progress = FlowProgress(settings.audit_url(), options, earlier)
            counts = monitor.counts
            with ProgressView(lambda: progress.status(counts), progress.clock) as view:
                stack.wait(duration, on_tick=view.tick)
        except Stopping as stopping:
            signals.stopping()
            _say(f"stopping ({SIGNAL_NAMES.get(stopping.args[0], stopping.args[0])})")
        finally:
            signals.stopping()
            stop.set()
            try:
                if sender is not None:
                    sender.join(5.0 if not signals.urgent() else 0.5)
                if monitor is not None:  # the counts it prints include what was written before the stop
                    monitor.stop(catch_up_s=0.5 if signals.urgent() else 5.0)
            finally:
                stack.stop(urgent=signals.urgent)  # whatever failed above, the children stop
    _report(settings, monitor.counts if monitor is not None else None, sent, earlier)
    if demo and not signals.urgent():
        _analyse(settings)


def _demo_privacy(settings: Settings) -> Settings:
    """``settings`` with privacy on for the demo: dev-only keys in the data directory, said so loudly."""
    if settings.privacy.enabled:
        return settings
    from ..privacy.dev import make_dev
    from ..settings.sections import PrivacySettings

    conf, made = make_dev(Path(settings.data_dir))
    out.print(
        f"[bold yellow]privacy on with DEV-ONLY keys[/] {'made' if made else 'found'} in "
        f"{Path(settings.data_dir).resolve() / 'privacy'}: keys beside the data protect nothing. "
        "Production sets PREFLOG_PRIVACY__* (docs/privacy.md).",
        soft_wrap=True,
    )
    return settings.model_copy(update={"privacy": PrivacySettings.model_validate(conf)})


def _analyse(settings: Settings) -> None:
    """The demo ends with what its preferences say: ``preflog report`` over the audit log."""
    from .report import write_report

    try:
        write_report(settings, Path(settings.data_dir) / "report")
    except FileNotFoundError:
        _say("no pairs in the audit log yet: no report (run the demo longer)")
        return
    _say(f"the report again, later: preflog --data-dir {settings.data_dir} report")


def _start_demo(
    settings: Settings,
    requests: int,
    rate: float,
    seed: int | None,
    stop: threading.Event,
    sent: dict[str, int],
    api: tuple[str, str] | None = None,
) -> threading.Thread:
    """Send synthetic traffic from a thread until done or ``stop`` is set; ``sent`` gets the counts.

    Each run draws a new seed unless one is given: the same seed gives the same request and feedback ids, which
    the audit log (rightly) stores once, so a second demo in the same data directory would add nothing new.
    """
    import secrets

    from ..producers.client import PreflogProducer
    from ..producers.generator import TrafficProfile
    from ..producers.generator import generate as make_events
    from ..producers.traffic import send_traffic

    producer: Any = PreflogProducer.from_settings(settings)
    if api is not None:  # valid events over HTTP; the generator's broken records still go raw to Kafka
        from ..api.sender import ApiSender

        producer = ApiSender(api[0], api[1], producer)
    seed = secrets.randbelow(2**31) if seed is None else seed
    profile = replace(TrafficProfile(), requests=requests, rate=rate, seed=seed)
    events = make_events(profile, image_dir=Path(settings.data_dir) / "images")  # the pictures its prompts show

    def run() -> None:
        try:
            sent.update(send_traffic(events, producer, pace=True, stop=stop))
        finally:
            producer.close()

    sender = threading.Thread(target=run, name="preflog-demo", daemon=True)
    sender.start()
    how = f"through the API at {api[0]}" if api is not None else "through the SDK"
    _say(f"demo: sending {len(events)} events at {rate:g} requests/s {how} (seed {seed})")
    return sender
