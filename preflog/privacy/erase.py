"""Erasure: a subject's data keys deleted, the copies in the clear withdrawn, and a receipt.

Every copy preflog keeps of a subject's personal fields is sealed with that subject's data keys: the
raw and output topics, the processor's state and changelog, the audit log, replays. Deleting the keys
(tombstones in the keys topic, an erasure mark kept for ever so readers say "erased", never "lost")
makes all of them unreadable at once, backups and object versions included, without rewriting a byte.
Producers running with a key watch drop the keys from their caches, so later events of the subject get
a new key.

Copies in the clear are what readers wrote: dataset builds and exports. A build lists its subjects in
``lineage/subjects.parquet``, an export in its subjects file (:mod:`.lineage`); each one holding the
subject is withdrawn: its data files are deleted, its manifest and card stay, and ``WITHDRAWN.json``
says by which erasure (``preflog dataset verify`` reports it; a rebuild leaves the subject out).
Reports hold counts and lengths, never a text: they are not touched.

The receipt (``<data dir>/privacy/erasures/<id>.json``) says what was erased, when, which stores it
reached and counts; it names key ids, builds and export paths, never a text or a raw id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .envelope import key_sql
from .keys import DataKey
from .lineage import exports_holding
from .store import DirKeyStore, KeyStore

__all__ = [
    "BUILDS", "FINAL", "LINEAGE", "RECEIPTS", "WITHDRAWN", "Receipt", "builds_holding", "erase", "erased_rows",
    "lineage_subjects", "partial_builds", "receipts", "record_build", "subjects_of_request", "withdraw",
]  # fmt: skip

#: the folder of receipts, under the data directory
RECEIPTS = Path("privacy") / "erasures"
#: the registry of sealed logs' builds, under the data directory (:func:`record_build`)
BUILDS = Path("privacy") / "builds.jsonl"
#: the mark of a withdrawn build or export
WITHDRAWN = "WITHDRAWN.json"
#: the subjects of a sealed log's dataset build, relative to its folder (written by the build)
LINEAGE = Path("lineage") / "subjects.parquet"
_KEEP = {"manifest.json", "README.md", WITHDRAWN}
#: what makes an erasure in a keys topic final (a tombstone hides a key; compaction removes its record)
FINAL = (
    "tombstones written: the old key records leave the brokers' disks when the topic is compacted (within "
    "max.compaction.lag.ms, a day as preflog topics create sets it); to make it final now, or on a broker that "
    "does not compact, rotate the master key (preflog privacy rotate), restart every process on the new one, "
    "rotate again (keys made meanwhile) and then destroy the old key"
)


@dataclass
class Receipt:
    """What an erasure did (no personal data: subjects appear as a digest of their pseudonyms)."""

    erasure: str
    at: str
    by: str  # "subject" or "request_id"
    subjects: list[str]  # sha256 of each pseudonym: proves which, reveals nothing
    keys_erased: list[str]
    rows: dict[str, int] = field(default_factory=dict)  # audit-log rows now reading as erased, by table
    builds_withdrawn: list[str] = field(default_factory=list)
    exports_withdrawn: list[str] = field(default_factory=list)
    stores: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def lineage_subjects(folder: Path) -> set[str]:
    """The subjects (pseudonyms) a build at ``folder`` lists in its lineage."""
    return {s for s in pq.read_table(folder / LINEAGE, columns=["subject"]).column("subject").to_pylist() if s}


def record_build(data_dir: Path, folder: Path) -> None:
    """Note a sealed log's build at ``folder`` in ``<data dir>/privacy/builds.jsonl``, wherever its root is."""
    registry = Path(data_dir) / BUILDS
    registry.parent.mkdir(parents=True, exist_ok=True)
    entry = {"path": str(Path(folder).resolve()), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with registry.open("a") as out:
        out.write(json.dumps(entry) + "\n")


def builds_holding(root: Path, subjects: set[str], data_dir: Path | None = None) -> list[Path]:
    """The builds whose lineage holds any of ``subjects`` (withdrawn ones excluded).

    Those under ``root``, and those the registry of ``data_dir`` names (builds made with another --root).
    """
    folders = {p.parent.parent.resolve() for p in root.glob(f"*/{LINEAGE.as_posix()}")} if root.is_dir() else set()
    registry = Path(data_dir) / BUILDS if data_dir is not None else None
    if registry is not None and registry.exists():
        folders |= {Path(json.loads(line)["path"]) for line in registry.read_text().splitlines() if line.strip()}
    found = []
    for folder in sorted(folders):
        lineage = folder / LINEAGE
        if folder.name.startswith(".") or (folder / WITHDRAWN).exists() or not lineage.exists():
            continue
        if lineage_subjects(folder) & subjects:
            found.append(folder)
    return found


_PARTIAL = re.compile(r"^\..+\.(?:tmp|work)-(\d+)$")


def partial_builds(root: Path) -> tuple[list[str], list[str]]:
    """The half-written build folders under ``root`` (``.NAME.tmp-PID``, ``.NAME.work-PID``): removed, running.

    Those whose process is gone are removed (they may hold opened texts that no lineage lists); those
    still being written are listed.
    """
    removed: list[str] = []
    running: list[str] = []
    if not root.is_dir():
        return removed, running
    for folder in sorted(root.iterdir()):
        found = _PARTIAL.match(folder.name)
        if found is None or not folder.is_dir():
            continue
        try:
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        except PermissionError:  # another user's live process
            running.append(folder.name)
        else:
            running.append(folder.name)
    return removed, running


def withdraw(folder: Path, erasure: str, at: str) -> None:
    """Delete build ``folder``'s data (every file but its manifest and card) and mark it withdrawn."""
    (folder / WITHDRAWN).write_text(json.dumps({"erasure": erasure, "at": at}) + "\n")
    for path in folder.iterdir():
        if path.name in _KEEP:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def erased_rows(
    log_url: str | None, keys: set[str], storage_options: dict[str, Any] | None = None
) -> dict[str, int]:
    """Rows of the audit log sealed with ``keys`` (they read as erased once the keys are), by table; {} without."""
    if not log_url or not keys:
        return {}
    from preflog.sinks.scan import connect, log_view

    con = connect(512 * 10**6)
    out: dict[str, int] = {}
    try:
        con.register("erased_keys", pa.table({"key_id": pa.array(sorted(keys), pa.string())}))
        key_of = {
            "pairs": "inference_metadata['preflog.key']",
            "unpaired": key_sql("prompt"),
        }
        for table, key in key_of.items():
            try:
                log_view(con, table, log_url, table, storage_options=storage_options)
            except FileNotFoundError:
                continue
            query = f"SELECT count(*) FROM {table} WHERE {key} IN (SELECT key_id FROM erased_keys)"
            out[table] = int(con.execute(query).fetchall()[0][0])
    finally:
        con.close()
    return out


def erase(
    store: KeyStore | DirKeyStore,
    subjects: set[str],
    data_dir: Path,
    datasets: Path,
    log_url: str | None = None,
    by: str = "subject",
    storage_options: dict[str, Any] | None = None,
) -> Receipt:
    """Erase ``subjects`` (pseudonyms): their keys, the builds and exports holding them; the receipt, written.

    An erasure of a subject without keys still withdraws copies and writes its receipt (it may have been
    erased before: erasing again is harmless).
    """
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    erasure = f"erasure-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    snapshot = store.load()
    keys: list[DataKey] = [k for s in sorted(subjects) for k in snapshot.of_subject(s)]
    key_ids = sorted(k.key_id for k in keys)
    rows = erased_rows(log_url, set(key_ids), storage_options)  # first: what fails here has erased nothing yet
    store.erase(keys, erasure)
    holding = builds_holding(datasets, subjects, data_dir)
    for folder in holding:
        withdraw(folder, erasure, at)
    here = datasets.resolve()
    builds = [f.name if f.parent == here else str(f) for f in holding]
    partial, running = partial_builds(datasets)
    exports = []
    for entry in exports_holding(data_dir, subjects, storage_options):
        fs, path = fsspec.core.url_to_fs(entry["path"], **((storage_options or {}) if "://" in entry["path"] else {}))
        if not fs.exists(path) and fs.exists(path + ".withdrawn.json"):
            continue  # withdrawn by an earlier erasure
        if fs.exists(path):
            fs.rm(path, recursive=True)
        with fs.open(path + ".withdrawn.json", "w") as mark:
            mark.write(json.dumps({"erasure": erasure, "at": at}) + "\n")
        exports.append(entry["path"])
    where = store.topic
    receipt = Receipt(
        erasure=erasure,
        at=at,
        by=by,
        subjects=sorted(hashlib.sha256(s.encode()).hexdigest() for s in subjects),
        keys_erased=key_ids,
        rows=rows,
        builds_withdrawn=builds,
        exports_withdrawn=exports,
        stores={
            "keys": f"{where}: {len(key_ids)} data keys deleted, erasure marks kept"
            + (f"; {FINAL}" if isinstance(store, KeyStore) else " (their files removed)"),
            "topics, processor state and changelogs, audit log, replays": "sealed with the deleted keys: unreadable",
            "dataset builds": f"{len(builds)} withdrawn (data deleted, WITHDRAWN.json); {len(partial)} half-written "
            f"by a build that died removed"
            + (f"; {len(running)} being written now: erase again when they end" if running else ""),
            "exports": f"{len(exports)} withdrawn",
            "reports": "hold counts and lengths, no text: unchanged",
        },
    )
    folder = Path(data_dir) / RECEIPTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{erasure}.json").write_text(receipt.to_json())
    return receipt


def subjects_of_request(
    log_url: str, request_id: str, snapshot: Any, storage_options: dict[str, Any] | None = None
) -> set[str]:
    """The subjects of ``request_id``'s rows in the audit log: pairs state theirs, signals by their data key."""
    from preflog.sinks.scan import connect, log_view

    queries = {
        "pairs": "SELECT DISTINCT inference_metadata['preflog.subject'], NULL FROM pairs WHERE request_id = ?",
        "unpaired": f"SELECT DISTINCT NULL, {key_sql('prompt')} FROM unpaired WHERE request_id = ?",
    }
    con = connect(512 * 10**6)
    found: set[str] = set()
    try:
        for table, query in queries.items():
            try:
                log_view(con, table, log_url, table, storage_options=storage_options)
            except FileNotFoundError:
                continue
            for subject, key_id in con.execute(query, [request_id]).fetchall():
                if subject:
                    found.add(subject)
                elif key_id in snapshot.keys:
                    found.add(snapshot.keys[key_id].subject)
    finally:
        con.close()
    return found


def receipts(data_dir: Path) -> list[dict[str, Any]]:
    """Every receipt under ``data_dir``, oldest first."""
    folder = Path(data_dir) / RECEIPTS
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
