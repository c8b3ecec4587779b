"""``preflog privacy ...`` (pseudonyms, keys, rotation, receipts) and ``preflog erase``."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Annotated

import typer

from ..errors import PreflogError
from .console import out, settings_of

__all__ = ["erase", "privacy_app"]

privacy_app = typer.Typer(
    help="Personal data: pseudonyms for support staff, master keys and their rotation, erasure receipts. "
    "Privacy is on with PREFLOG_PRIVACY__ENABLED=true, a master key and a pseudonym secret (docs/privacy.md).",
    no_args_is_help=True,
)


def _needs_privacy(settings: object) -> None:
    if not settings.privacy.enabled:  # type: ignore[attr-defined]
        raise PreflogError(
            "privacy is off: set PREFLOG_PRIVACY__ENABLED=true with PREFLOG_PRIVACY__MASTER_KEY_FILE and "
            "PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE (preflog privacy new-key makes both), or run from the data "
            "directory of `preflog up --demo`"
        )


@privacy_app.command()
def pseudonym(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Raw user, session or annotator ids (one or more).")],
) -> None:
    """The pseudonym preflog stores for each id (the subject to pass to `preflog erase`, or to look up rows).

    Example: preflog privacy pseudonym alice@example.org
    """
    from ..privacy.keys import load_secret
    from ..privacy.pseudonym import pseudonym as make

    settings = settings_of(ctx)
    _needs_privacy(settings)
    secret = load_secret(settings)
    for raw in ids:
        out.print(make(raw, secret), markup=False)  # the id itself is not echoed: it may be personal


@privacy_app.command("new-key")
def new_key(
    path: Annotated[Path, typer.Argument(help="File to write the new 32-byte master key to (mode 0600).")],
    secret: Annotated[
        Path | None, typer.Option(help="Also write a new pseudonym secret to this file (mode 0600).")
    ] = None,
) -> None:
    """Make a master key (and a pseudonym secret): the files PREFLOG_PRIVACY__*_FILE point at.

    Keep them out of the data directory and back them up: without the master key no sealed field can be
    read again, and a new pseudonym secret gives new pseudonyms.
    """
    from ..privacy.keys import generate_master

    for target in (path, secret):
        if target is not None and target.exists():
            raise PreflogError(f"{target} exists: a key file is never overwritten; pick a new path")
    master = generate_master(path)
    out.print(f"master key {master.id} written to {path}", soft_wrap=True)
    if secret is not None:
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_hex(32) + "\n")
        out.print(f"pseudonym secret written to {secret}", soft_wrap=True)
    out.print(f"use it: export PREFLOG_PRIVACY__ENABLED=true PREFLOG_PRIVACY__MASTER_KEY_FILE={path}", soft_wrap=True)


@privacy_app.command()
def rotate(
    ctx: typer.Context,
    new_key_file: Annotated[Path, typer.Option(help="The new master key (preflog privacy new-key makes one).")],
) -> None:
    """Re-wrap every data key with a new master key; no data is rewritten.

    Then point PREFLOG_PRIVACY__MASTER_KEY_FILE at the new key everywhere, keeping the old one in
    PREFLOG_PRIVACY__PREVIOUS_MASTER_KEY_FILES until every process has restarted.
    """
    from ..privacy.keys import load_masters, master_from_file, pick
    from ..privacy.store import open_store

    settings = settings_of(ctx)
    _needs_privacy(settings)
    masters = load_masters(settings)
    new = master_from_file(new_key_file, "--new-key-file")
    store = open_store(settings)
    try:
        snapshot = store.load()
        moved = [k.rewrapped(pick(masters, k.master), new) for k in snapshot.keys.values() if k.master != new.id]
        store.put(moved)
    finally:
        store.close()
    out.print(f"re-wrapped {len(moved)} data keys with master key {new.id} in {store.topic}", soft_wrap=True)
    out.print(
        f"next: PREFLOG_PRIVACY__MASTER_KEY_FILE={new_key_file} and the old key in "
        "PREFLOG_PRIVACY__PREVIOUS_MASTER_KEY_FILES until every process restarted",
        soft_wrap=True,
    )


@privacy_app.command()
def erasures(ctx: typer.Context) -> None:
    """The erasure receipts of the data directory, oldest first."""
    from ..privacy.erase import receipts

    found = receipts(Path(settings_of(ctx).data_dir))
    if not found:
        out.print("no erasures yet")
    for r in found:
        out.print(
            f"{r['erasure']}  {r['at']}  by {r['by']}: {len(r['keys_erased'])} keys, rows {r['rows']}, "
            f"{len(r['builds_withdrawn'])} builds and {len(r['exports_withdrawn'])} exports withdrawn",
            soft_wrap=True,
            markup=False,
        )


def erase(
    ctx: typer.Context,
    subject: Annotated[
        list[str] | None,
        typer.Option(help="A raw user id or its pseudonym (psn_...), repeatable: all of that person's data."),
    ] = None,
    request_id: Annotated[
        list[str] | None,
        typer.Option(help="A request id, repeatable: erases the person the request is about (all of their data)."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Audit log root (default: the sink's).")] = None,
    root: Annotated[Path | None, typer.Option(help="Datasets folder (default: <data-dir>/datasets).")] = None,
) -> None:
    """Erase people's personal data from every copy: crypto-shredding, then the builds and exports in the clear.

    Their data keys are deleted from the keys topic (or directory), so every sealed copy, in the topics,
    the processor's state, the audit log and replays, reads as erased from now on; dataset builds and
    exports holding them are withdrawn (data deleted, marked). A receipt without personal data is written
    to <data-dir>/privacy/erasures/. Erasing twice is harmless.

    Example: preflog erase --subject alice@example.org
    """
    from ..privacy.erase import RECEIPTS, subjects_of_request
    from ..privacy.erase import erase as run
    from ..privacy.keys import load_secret
    from ..privacy.pseudonym import is_pseudonym, request_subject
    from ..privacy.pseudonym import pseudonym as make
    from ..privacy.store import open_store

    settings = settings_of(ctx)
    _needs_privacy(settings)
    if not subject and not request_id:
        raise typer.BadParameter("give --subject or --request-id", param_hint="--subject")
    secret = load_secret(settings)
    log_url = url or settings.audit_url()
    store = open_store(settings)
    try:
        subjects = {s if is_pseudonym(s) else make(s, secret) for s in subject or []}
        if request_id:
            snapshot = store.load()
            for given in request_id:
                try:
                    rid = str(uuid.UUID(given.strip()))  # as the SDK stores it: lower case, hyphens
                except ValueError:
                    raise typer.BadParameter("not a UUID", param_hint="--request-id") from None
                found = subjects_of_request(log_url, rid, snapshot, settings.sink.storage_options())
                subjects |= found | {request_subject(rid, secret)}
        datasets = root or Path(settings.data_dir) / "datasets"
        with out.status("erasing ..."):
            receipt = run(
                store, subjects, Path(settings.data_dir), datasets, log_url,
                by="request_id" if request_id else "subject", storage_options=settings.sink.storage_options(),
            )  # fmt: skip
    finally:
        store.close()
    out.print(f"{receipt.erasure}: {len(subjects)} subject(s), {len(receipt.keys_erased)} data keys deleted")
    if not receipt.keys_erased:
        out.print(
            "no data keys for them: an id preflog never saw (check it with `preflog privacy pseudonym`, and the "
            "pseudonym secret), or erased before (`preflog privacy erasures`)",
            soft_wrap=True,
        )
    rows = ", ".join(f"{table} {n}" for table, n in receipt.rows.items()) or "none"
    out.print(f"audit-log rows that now read as erased: {rows}", soft_wrap=True)
    if "being written now" in receipt.stores["dataset builds"]:
        out.print(f"dataset builds: {receipt.stores['dataset builds']}", soft_wrap=True, markup=False)
    for name in receipt.builds_withdrawn:
        out.print(
            f"withdrew dataset build {name} (rebuild it under a new name: a build is never rewritten, and the "
            "rebuild leaves them out)",
            soft_wrap=True,
        )
    for path in receipt.exports_withdrawn:
        out.print(f"withdrew export {path}", soft_wrap=True, markup=False)
    if settings.privacy.keys_dir is None and receipt.keys_erased:
        from ..privacy.erase import FINAL

        out.print(f"keys topic {settings.privacy.keys_topic}: {FINAL}", soft_wrap=True)
    out.print(f"receipt: {Path(settings.data_dir) / RECEIPTS / (receipt.erasure + '.json')}", soft_wrap=True)
