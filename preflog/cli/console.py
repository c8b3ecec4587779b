"""What every command shares: the consoles, the progress bar and the settings of this invocation."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..settings import Settings, load_settings

__all__ = ["console", "force_progress", "out", "override", "progress_bar", "settings_of"]

console = Console(stderr=True)
out = Console()


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the global callback read for this invocation."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def override(settings: Settings, section: str, flags: dict[str, Any]) -> Settings:
    """``settings`` with the subcommand's flags that were given (not None) set in ``section``."""
    given = {k: v for k, v in flags.items() if v is not None}
    return load_settings({**settings.model_dump(), section: given})


def progress_bar() -> Progress:
    """A progress bar on stderr; shown on a terminal, or anywhere with PREFLOG_PROGRESS=1."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not force_progress(),
    )


def force_progress() -> bool:
    """Whether PREFLOG_PROGRESS=1 asks for progress bars off a terminal too."""
    return os.environ.get("PREFLOG_PROGRESS") == "1"
