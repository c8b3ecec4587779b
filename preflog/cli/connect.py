"""Which broker a command talks to, and a quick check that it answers.

The address comes from ``--bootstrap-servers``, else ``PREFLOG_KAFKA__BOOTSTRAP_SERVERS``
(or ``PREFLOG_KAFKA``), else the ``preflog up`` stack running from the data
directory (``<data-dir>/stack.json``), else the default ``127.0.0.1:9092``.
A command that needs a broker checks it before doing anything else
(:func:`preflog.deploy.probe.check_broker`), so a wrong address fails in
seconds with one line, not after a client's long retry. The long-running
services (``process``, ``sink``) check too and fail the same way at start;
a broker lost while they run is their Kafka client's to retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.core

from ..deploy.runfile import StackRecord, find_running

__all__ = ["BROKER_COMMANDS", "CommandGroup", "StackDiscovery", "command_args", "may_use_broker", "needs_broker"]

# Commands that always talk to Kafka (first word after `preflog`), except in the modes below.
BROKER_COMMANDS = {
    "produce", "generate", "tail", "topics", "offsets", "process", "sink", "replay", "reconcile", "serve",
}  # fmt: skip
# Commands that never talk to Kafka (`up` starts its own broker).
NO_BROKER_COMMANDS = {"up", "verify", "export", "dataset", "report", "keys"}
# Long-running services: they keep their client's log (it is their output, e.g. under `preflog up`).
SERVICES = {"process", "sink", "serve"}
_ARGS_KEY = "preflog.command_args"


class CommandGroup(typer.core.TyperGroup):
    """The top-level group; remembers the subcommand's arguments so the callback can see its mode."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_ARGS_KEY] = list(rest)
        return name, command, rest


def command_args(ctx: typer.Context) -> list[str]:
    """The arguments after the subcommand's name (empty before resolution)."""
    return list(ctx.meta.get(_ARGS_KEY, []))


def may_use_broker(command: str | None, args: list[str]) -> bool:
    """Whether the command may talk to Kafka: it needs a broker, or preflog does not know (a new command)."""
    return needs_broker(command, args) or command not in (*BROKER_COMMANDS, *NO_BROKER_COMMANDS, None)


def needs_broker(command: str | None, args: list[str]) -> bool:
    """Whether ``preflog COMMAND ARGS`` will talk to Kafka (help, --dry-run produce, generate --out do not)."""
    if command not in BROKER_COMMANDS or "--help" in args:
        return False
    if command in ("topics", "offsets"):
        return any(not a.startswith("-") for a in args)  # a subcommand, not just the group's help
    if command == "generate":
        return not any(a == "--out" or a.startswith("--out=") for a in args)
    if command == "produce":
        return "--dry-run" not in args
    return True


class StackDiscovery:
    """The ``discover`` hook of :func:`preflog.settings.load_settings`: a running ``preflog up`` stack's address."""

    def __init__(self) -> None:
        self.found: StackRecord | None = None
        self.data_dir: Path | None = None

    def __call__(self, data_dir: Path) -> str | None:
        self.data_dir = data_dir
        self.found = find_running(data_dir)
        return self.found.bootstrap_servers if self.found is not None else None

    def where(self) -> str:
        """Where the address came from, for messages ('' when not from a stack file)."""
        if self.found is None or self.data_dir is None:
            return ""
        return f"from {self.data_dir / 'stack.json'}, preflog up pid {self.found.up_pid}"
