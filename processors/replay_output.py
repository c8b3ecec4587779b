"""Where a replay may write: never into the live audit log, only into an empty prefix."""

from __future__ import annotations

from preflog.errors import PreflogError
from preflog.sinks.storage import Storage

__all__ = ["ReplayOutputError", "ensure_unused", "replay_output"]


class ReplayOutputError(PreflogError):
    """The replay's output location is unsafe (the live log) or already used."""


def _location(url: str) -> str:
    """``url`` as protocol://absolute-path, so that a path and its file:// URL compare equal."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{path.rstrip('/')}"


def replay_output(audit_url: str, name: str, output: str | None) -> str:
    """Where a replay writes: ``output``, or ``<audit log>/_replays/<name>`` (ignored by readers of the live log).

    Args:
        audit_url: The live audit log's root.
        name: The replay's name.
        output: The root the user asked for (None: the default).

    Returns:
        The output root as protocol://absolute-path.

    Raises:
        ReplayOutputError: The target is, holds or lies inside the live log's tables; a replay never writes there.
    """
    live = _location(audit_url)
    target = _location(output or f"{audit_url.rstrip('/')}/_replays/{name}")
    inside = target.removeprefix(live + "/") if target.startswith(live + "/") else None
    if target == live or live.startswith(target + "/") or (inside is not None and not inside.startswith("_")):
        raise ReplayOutputError(
            f"{target} is (or holds) the live audit log {live}; a replay never writes there. "
            "Leave out --output (default <audit log>/_replays/<name>) or choose a separate prefix"
        )
    return target


def ensure_unused(storage: Storage, target: str) -> None:
    """Refuse an output that already holds files: a replay writes into an empty prefix only.

    Raises:
        ReplayOutputError: ``storage`` (at ``target``) holds a file; the message names the fix.
    """
    if next(storage.list(), None) is not None:
        raise ReplayOutputError(
            f"{target} already holds files (an earlier or interrupted replay); choose another --name or --output"
        )
