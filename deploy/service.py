"""How ``preflog up`` runs a service child: ``python -m preflog.deploy.service [OPTIONS] -- ARGS``.

ARGS is a ``preflog`` command line (``process``, ``sink``). Before running it:

* the child ties its life to the parent's (:func:`.lifeline.watch_parent`):
  it stops when ``preflog up`` ends, however it ends, and exits hard if the
  clean stop takes longer than ``--grace`` seconds;
* with ``--metrics-file``, the child serves Prometheus metrics and its health
  probes (:mod:`.health`) on a port it
  binds itself (port 0: the kernel picks a free one) and writes that port to
  the file; the parent reads it. A port picked by the parent and released
  before the child binds it could be taken in between by another process.
  The command's own metrics server stays off (``metrics_port=0`` in the
  settings the parent passes); metrics live in the process-wide registry,
  so this server serves them all the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .lifeline import watch_parent

__all__ = ["main", "serve_metrics"]


def serve_metrics(port_file: Path) -> int:
    """Serve /metrics, /healthz and /readyz on a kernel-chosen loopback port; write the port to ``port_file``."""
    from .health import serve

    _, port = serve("127.0.0.1", 0)
    tmp = port_file.with_name(f".{port_file.name}.tmp")
    tmp.write_text(f"{port}\n", encoding="ascii")
    os.replace(tmp, port_file)
    print(f"metrics on http://127.0.0.1:{port}/metrics", file=sys.stderr, flush=True)
    return port


def main(argv: list[str] | None = None) -> None:
    """Parse the launcher options, then run the preflog command after ``--`` in this process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m preflog.deploy.service")
    parser.add_argument("--parent", type=int, required=True, help="pid of the process this one must not outlive")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds a stop may take after the parent died")
    parser.add_argument("--metrics-file", type=Path, help="serve metrics on port 0 and write the port here")
    options = parser.parse_args(argv[:split])
    watch_parent(options.parent, options.grace)
    if options.metrics_file is not None:
        serve_metrics(options.metrics_file)
    from preflog.cli import main as preflog_main

    sys.argv = ["preflog", *argv[split + 1 :]]
    preflog_main()


if __name__ == "__main__":
    main()
