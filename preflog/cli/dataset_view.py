"""``preflog dataset show`` and ``diff`` as tables: a build's manifest, and what changed between two builds."""

from __future__ import annotations

import json
from typing import Any

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.table import Table

__all__ = ["print_diff", "print_manifest"]

#: how many source files a table lists before "... and N more" (--json lists them all)
SHOWN = 10
SPLITS = ("train", "validation", "test")
# the manifest's keys shown by a table of their own (or in the title), not in the overview
OWN_TABLES = {"name", "selection", "sources", "files"}


def _value(value: Any) -> str:
    """One manifest value as people read it: yes/no, "-" for nothing, "key value, ..." for a mapping."""
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} ({_value(v)})" if isinstance(v, dict) and v else f"{k} {_value(v)}"
                         for k, v in value.items())  # fmt: skip
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, list):
        return json.dumps(value, default=str)
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _listed(table: Table, paths: list[str], more_label: str) -> None:
    for path in paths[:SHOWN]:
        table.add_row(path)
    if len(paths) > SHOWN:
        table.add_row(f"... and {len(paths) - SHOWN} more {more_label} (--json lists them all)")


def print_manifest(
    out: Console, m: dict[str, Any], as_json: bool = False, withdrawn: dict[str, Any] | None = None
) -> None:
    """Print build ``m``'s manifest: an overview, its selection (what was set), its outputs and its sources.

    ``withdrawn``: the mark of an erasure that withdrew the build (its ``WITHDRAWN.json``), said first; with
    ``as_json``, the manifest is printed as it is, and the mark under ``withdrawn`` beside it.
    """
    if as_json:
        out.print_json(json.dumps(m if withdrawn is None else {**m, "withdrawn": withdrawn}))
        return
    if withdrawn is not None:
        out.print(
            f"WITHDRAWN by {withdrawn['erasure']} at {withdrawn['at']}: it held a subject that was erased, and its "
            "output files were removed (the manifest and card stay; the files below are what it had); rebuild it "
            "under a new name",
            soft_wrap=True,
            markup=False,
        )
    overview = Table("", "", title=f"dataset {m.get('name', '')}", box=SIMPLE_HEAD, show_header=False)
    overview.add_row("rows", ", ".join(f"{s} {m.get('rows', {}).get(s, 0)}" for s in SPLITS))
    for key, value in m.items():
        if key not in OWN_TABLES and key not in ("rows", "content_hash"):
            overview.add_row(_label(key), _value(value))
    out.print(overview)
    if "content_hash" in m:  # whole, on one line, whatever the terminal's width: it is copied to compare builds
        out.print(f"content hash {m['content_hash']}", soft_wrap=True, highlight=False)
    selection = Table("setting", "value", title="selection (what was set)", box=SIMPLE_HEAD)
    for key, value in m.get("selection", {}).items():
        if value not in (None, [], {}, False):
            selection.add_row(_label(key), _value(value))
    out.print(selection)
    files = Table("file", "rows", "bytes", "sha256", title="outputs", box=SIMPLE_HEAD)
    for f in m.get("files", []):
        files.add_row(f["path"], _value(f.get("rows")), _value(f.get("bytes")), str(f.get("sha256", ""))[:16])
    out.print(files)
    sources = m.get("sources", [])
    size = sum(s.get("size", 0) for s in sources)
    listed = Table("path", title=f"sources: {len(sources)} file(s) of the audit log, {size:,} bytes", box=SIMPLE_HEAD)
    _listed(listed, [s["path"] for s in sources], "files")
    out.print(listed)


def print_diff(out: Console, first: str, second: str, d: dict[str, Any], as_json: bool = False) -> None:
    """Print what changed from build ``first`` to ``second`` (``d``: :func:`preflog.dataset.catalog.diff`)."""
    if as_json:
        out.print_json(json.dumps(d))
        return
    same = "the same content" if d["same_content"] else "different content"
    out.print(f"{first} -> {second}: {same}")
    rows = Table("split", first, second, "change", title="rows per split", box=SIMPLE_HEAD)
    for split, (a, b) in d["rows"].items():
        rows.add_row(split, str(a), str(b), f"{b - a:+d}")
    out.print(rows)
    pairs = Table("pairs", "count", box=SIMPLE_HEAD)
    for key in ("pairs_added", "pairs_removed", "pairs_moved_split"):
        pairs.add_row(_label(key).removeprefix("pairs "), str(d[key]))
    out.print(pairs)
    if d["selection"]:
        selection = Table("setting", first, second, title="selection changed", box=SIMPLE_HEAD)
        for key, (a, b) in d["selection"].items():
            selection.add_row(_label(key), _value(a), _value(b))
        out.print(selection)
    else:
        out.print("selection: the same")
    for key in ("sources_added", "sources_removed", "sources_changed"):
        paths = d[key]
        if paths:
            table = Table(f"{_label(key)}: {len(paths)}", box=SIMPLE_HEAD)
            _listed(table, paths, "files")
            out.print(table)
    if not any(d[k] for k in ("sources_added", "sources_removed", "sources_changed")):
        out.print("sources: the same files")
