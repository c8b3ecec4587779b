"""``preflog keys create|list|revoke``: the ingestion API's keys (hashed at rest, one tenant each)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from ..errors import PreflogError
from .console import out, settings_of

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys for the HTTP ingestion API (being built: `preflog serve` is not there yet): each bound to a "
    "tenant and scopes, stored hashed in <data-dir>/api/keys.json (or --file), shown once when made, revocable.",
    no_args_is_help=True,
)
FileOption = Annotated[Path | None, typer.Option("--file", help="The key file (default: <data-dir>/api/keys.json).")]


def _file(ctx: typer.Context, given: Path | None) -> Path:
    return given or Path(settings_of(ctx).data_dir) / "api" / "keys.json"


@keys_app.command()
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant stamped on every event this key sends.")],
    scope: Annotated[
        list[str] | None, typer.Option(help="inference and/or feedback (repeatable; default: both).")
    ] = None,
    name: Annotated[str, typer.Option(help="A note for people: which service holds it.")] = "",
    public: Annotated[bool, typer.Option(help="A browser key: feedback only, from the --origin pages.")] = False,
    origin: Annotated[
        list[str] | None, typer.Option(help="With --public: an origin allowed to send, e.g. https://app.example.com.")
    ] = None,
    file: FileOption = None,
) -> None:
    """Make a key and print it once (only its hash is kept: store it now).

    Example: preflog keys create --tenant acme --scope feedback --public --origin https://chat.acme.com
    """
    from ..api.keys import SCOPES, KeyFile

    keys = KeyFile.load(_file(ctx, file))
    try:
        text, record = keys.create(tenant, tuple(scope or SCOPES), name, public, tuple(origin or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.print(text, markup=False, highlight=False)
    kind = "browser key" if record.public else "key"
    out.print(
        f"{kind} {record.id} of tenant {record.tenant} ({', '.join(record.scopes)}) saved in {keys.path}; "
        "this is the only time it is shown",
        soft_wrap=True,
        markup=False,
    )


@keys_app.command("list")
def list_keys(ctx: typer.Context, file: FileOption = None) -> None:
    """The keys (ids, tenants, scopes, when made and revoked; never a key)."""
    from ..api.keys import KeyFile

    keys = KeyFile.load(_file(ctx, file))
    table = Table("tenant", "scopes", "name", "origins", "created", "revoked")
    table.columns.insert(0, Column("id", no_wrap=True))  # an id is what `revoke` takes: never broken

    def when(ms: int | None) -> str:
        return "" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")

    for k in keys.keys.values():
        scopes = ", ".join(k.scopes) + (" (public)" if k.public else "")
        table.add_row(k.id, k.tenant, scopes, k.name, " ".join(k.origins), when(k.created_ms), when(k.revoked_ms))
    out.print(table)


@keys_app.command()
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (preflog keys list).")],
    file: FileOption = None,
) -> None:
    """Revoke a key: requests with it are refused from now on (the API rereads the file)."""
    from ..api.keys import KeyFile

    keys = KeyFile.load(_file(ctx, file))
    try:
        record = keys.revoke(key_id)
    except KeyError as exc:
        raise PreflogError(str(exc.args[0])) from None
    out.print(f"key {record.id} of tenant {record.tenant} revoked", markup=False)
