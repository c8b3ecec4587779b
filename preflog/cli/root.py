"""The ``preflog`` command group: global flags, settings for the invocation, and the broker check.

Settings come from ``PREFLOG_*`` environment variables; the global flags
below override them for one run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import PreflogError
from ..settings import load_settings
from .connect import SERVICES, CommandGroup, StackDiscovery, command_args, may_use_broker, needs_broker
from .console import console

__all__ = ["app", "main"]

app = typer.Typer(
    cls=CommandGroup,
    help="preflog: log preference pairs (prompt, chosen, rejected + provenance) from Kafka to an audit log.\n\n"
    "Start here: `preflog up --demo` runs the whole pipeline on this machine.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


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
    """Read the settings once, find the broker (flag, environment, a running `preflog up`), check it answers."""
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
        from ..deploy.probe import check_broker

        if not verbose and command not in SERVICES and "log_level" not in settings.kafka.extra:
            # librdkafka's connection lines (e.g. "Disconnected" at shutdown) only with --verbose
            kafka = settings.kafka.model_copy(update={"extra": {**settings.kafka.extra, "log_level": "0"}})
            settings = settings.model_copy(update={"kafka": kafka})
        check_broker(settings.kafka.client_config(), where=discovery.where() if discovery else "", quiet=not verbose)
    ctx.obj = settings


def main() -> None:
    """Console entry point: PreflogErrors print their message, not a traceback."""
    try:
        app()
    except PreflogError as exc:
        console.print("[bold red]error:[/] ", end="")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
