"""The ``preflog`` command line. Every subcommand has ``--help``.

One module per command group, presentation only (flags, tables, exit codes);
what the commands do lives in the packages below (``kafka``, ``processors``,
``sinks``, ``deploy``). ``preflog`` (the console script) and ``python -m
preflog`` both call :func:`main`.
"""

from __future__ import annotations

from .audit import reconcile, verify
from .dataset import dataset_app
from .export import export
from .keys import keys_app
from .offsets import offsets_app
from .privacy import erase, privacy_app
from .produce import generate, produce
from .replay import replay
from .report import report
from .root import app, main
from .run import process, sink
from .serve import serve
from .tail import tail
from .topics import topics_app
from .up import up

__all__ = ["app", "main"]

# The order of `preflog --help`: commands first, then the groups.
for _command in (produce, generate, process, sink, verify, export, report, tail, replay, reconcile, erase, serve, up):
    app.command()(_command)
app.add_typer(topics_app, name="topics")
app.add_typer(offsets_app, name="offsets")
app.add_typer(dataset_app, name="dataset")
app.add_typer(privacy_app, name="privacy")
app.add_typer(keys_app, name="keys")
