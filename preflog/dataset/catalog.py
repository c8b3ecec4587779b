"""The builds under a datasets folder: list them, read a manifest, verify a build against it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflog.privacy.erase import WITHDRAWN, lineage_subjects
from preflog.sinks.storage import Storage

from .build import LINEAGE, MANIFEST, content_hash
from .hashing import sha256_file, sha256_source

#: what to do with a build that holds an erased subject (a build is never rewritten: its name is taken)
REBUILD = "rebuild it under a new name (a build is never rewritten; a rebuild leaves erased subjects out)"

__all__ = ["Check", "builds", "diff", "manifest", "verify", "withdrawal"]


def manifest(root: Path, name: str) -> dict[str, Any]:
    """The manifest of build ``name``.

    Raises:
        FileNotFoundError: there is no such build (the message lists the ones there are).
    """
    path = root / name / MANIFEST
    if not path.exists():
        known = ", ".join(m["name"] for m in builds(root)) or "none"
        raise FileNotFoundError(f"no dataset {name!r} under {root} (builds there: {known})")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def withdrawal(folder: Path) -> dict[str, Any] | None:
    """The mark of build ``folder`` that an erasure withdrew (``erasure``, ``at``: its data deleted); None if not."""
    path = folder / WITHDRAWN
    if not path.exists():
        return None
    mark: dict[str, Any] = json.loads(path.read_text())
    return mark


def builds(root: Path) -> list[dict[str, Any]]:
    """The manifests of every complete build under ``root``, by name."""
    if not root.exists():
        return []
    found = [json.loads((p / MANIFEST).read_text()) for p in sorted(root.iterdir()) if (p / MANIFEST).exists()]
    return found


@dataclass
class Check:
    """What :func:`verify` found: problems (a build that changed) and notes (sources no longer readable)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def verify(root: Path, name: str, sources: bool = True, erasures: list[dict[str, Any]] | None = None) -> Check:
    """Recompute build ``name``'s file hashes and content hash; with ``sources``, its source files' too.

    A build an erasure withdrew (``WITHDRAWN.json``), or one holding a subject that an erasure of
    ``erasures`` (receipts, :func:`preflog.privacy.erase.receipts`) erased, is a problem: rebuild it under a new name.
    """
    m = manifest(root, name)
    folder = root / name
    check = Check()
    mark = withdrawal(folder)
    if mark is not None:
        check.problems.append(
            f"withdrawn by {mark['erasure']} at {mark['at']}: it held a subject that was erased, and its data was "
            f"deleted; {REBUILD}"
        )
        return check
    check.problems += _erased_subjects(folder, m.get("built_at"), erasures or [])
    for f in m["files"]:
        path = folder / f["path"]
        if not path.exists():
            check.problems.append(f"{f['path']}: missing")
        elif sha256_file(path) != f["sha256"]:
            check.problems.append(f"{f['path']}: its sha256 is not the manifest's (the file changed)")
    listed = {f["path"] for f in m["files"]} | {MANIFEST}
    extra = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    check.problems += [f"{p}: not in the manifest" for p in extra if p not in listed]
    if content_hash(m["files"], m["selection"]) != m["content_hash"]:
        check.problems.append("the content hash is not the one the manifest's files and selection give")
    if sources:
        storage = Storage(m["log"])
        for s in m["sources"]:
            try:
                digest = sha256_source(storage, s["path"])
            except FileNotFoundError:
                check.notes.append(f"source {s['path']} is no longer in the log")
                continue
            if digest != s["sha256"]:
                check.problems.append(f"source {s['path']}: its sha256 is not the one the build read")
    return check


def _erased_subjects(folder: Path, built_at: str | None, erasures: list[dict[str, Any]]) -> list[str]:
    """A problem per erasure, made since the build, of a subject the build's lineage holds.

    An erasure before the build is no problem: the build left the erased rows out (a subject's later
    data, sealed with a new key, is theirs to give).
    """
    lineage = folder / LINEAGE
    erasures = [e for e in erasures if built_at is None or e["at"] >= built_at]
    if not erasures or not lineage.exists():
        return []
    digests = {hashlib.sha256(s.encode()).hexdigest() for s in lineage_subjects(folder)}
    return [
        f"holds a subject erased by {e['erasure']} at {e['at']}: {REBUILD}"
        for e in erasures
        if digests & set(e.get("subjects", []))
    ]


def _pairs(folder: Path) -> str:
    """The SQL of (pair_id, split) of a build's rows, from its Parquet shards (none: no row)."""
    shards = sorted(str(p).replace("'", "''") for p in (folder / "data").glob("*.parquet"))
    if not shards:
        return "SELECT NULL::VARCHAR AS pair_id, NULL::VARCHAR AS split WHERE FALSE"
    files = "[" + ", ".join(f"'{p}'" for p in shards) + "]"
    split = "split_part(parse_filename(filename), '-', 1)"
    return f"SELECT pair_id, {split} AS split FROM read_parquet({files}, filename = true)"


def _compare(root: Path, a: str, b: str) -> dict[str, int]:
    """Pairs added, removed and moved to another split from build ``a`` to ``b`` (a DuckDB join, bounded memory)."""
    from preflog.sinks.scan import connect

    con = connect()
    try:
        query = f"""SELECT count(*) FILTER (x.pair_id IS NULL), count(*) FILTER (y.pair_id IS NULL),
                           count(*) FILTER (x.split <> y.split)
                    FROM ({_pairs(root / a)}) x FULL JOIN ({_pairs(root / b)}) y USING (pair_id)"""
        added, removed, moved = con.execute(query).fetchall()[0]
    finally:
        con.close()
    return {"pairs_added": int(added), "pairs_removed": int(removed), "pairs_moved_split": int(moved)}


def diff(root: Path, a: str, b: str) -> dict[str, Any]:
    """What changed from build ``a`` to build ``b``: selection, sources, rows per split and pairs.

    Raises:
        FileNotFoundError: either build does not exist.
    """
    ma, mb = manifest(root, a), manifest(root, b)
    sa = {s["path"]: s["sha256"] for s in ma["sources"]}
    sb = {s["path"]: s["sha256"] for s in mb["sources"]}
    keys = sorted(ma["selection"].keys() | mb["selection"].keys())
    changed = {k: [ma["selection"].get(k), mb["selection"].get(k)] for k in keys}
    return {
        "same_content": ma["content_hash"] == mb["content_hash"],
        "selection": {k: v for k, v in changed.items() if v[0] != v[1]},
        "sources_added": sorted(sb.keys() - sa.keys()),
        "sources_removed": sorted(sa.keys() - sb.keys()),
        "sources_changed": sorted(p for p in sa.keys() & sb.keys() if sa[p] != sb[p]),
        "rows": {s: [ma["rows"].get(s, 0), mb["rows"].get(s, 0)] for s in ("train", "validation", "test")},
        **_compare(root, a, b),
    }
