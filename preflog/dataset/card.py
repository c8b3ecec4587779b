"""A build's dataset card (``README.md``, Hugging Face conventions) and the audit-log watermark it read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from preflog.sinks.naming import parse_file_name

from .consent import REASONS
from .images import image_lines
from .subjects import card_lines

__all__ = ["JSONL", "card", "counts", "watermark"]

#: the JSON-lines folders of a build, each a config of the card
JSONL = ("trl", "trl-conversational", "openai", "nemo", "kto", "listwise", "ties")


def watermark(files: Iterable[str]) -> dict[str, int]:
    """The last Kafka offset the build's files hold, per ``topic[partition]`` (file names carry their range).

    A topic recreated empty (a broker that restarted without its log) starts its offsets again: each such
    incarnation after the first is its own key, ``topic+i0001[partition]``, as in the file names.
    """
    last: dict[str, int] = {}
    for path in files:
        name = parse_file_name(path)
        if name is not None:
            tag = f"+i{name.incarnation:04d}" if name.incarnation else ""
            where = f"{name.topic}{tag}[{name.partition}]"
            last[where] = max(last.get(where, -1), name.last)
    return dict(sorted(last.items()))


def counts(con: Any, rows: str, column: str) -> dict[str, dict[str, int]]:
    """Rows of relation ``rows`` per split and value of ``column`` (null as ``"-"``)."""
    grouped = con.execute(f"SELECT split, {column}, count(*) FROM {rows} GROUP BY ALL").fetchall()
    out: dict[str, dict[str, int]] = {}
    for split, value, n in sorted(grouped, key=lambda g: (g[0], str(g[1]))):
        out.setdefault(split, {})[str(value) if value is not None else "-"] = int(n)
    return out


def _table(title: str, by_split: dict[str, dict[str, int]]) -> list[str]:
    values = sorted({v for split in by_split.values() for v in split})
    splits = sorted(by_split)
    lines = [f"| {title} | {' | '.join(splits)} |", "| --- |" + " ---: |" * len(splits)]
    lines += [f"| {v} | {' | '.join(str(by_split[s].get(v, 0)) for s in splits)} |" for v in values]
    return lines


def _formats(manifest: dict[str, Any]) -> list[str]:
    """The formats line of a build that chose its formats or compressed them (a full build's card says nothing)."""
    if "formats" not in manifest:
        return []
    sizes = ", ".join(f"{k} {v:,} bytes" for k, v in manifest.get("bytes", {}).items())
    return [f"- formats written: {', '.join(manifest['formats'])} (JSON lines compression: {manifest['compress']}; "
            f"{sizes})"]  # fmt: skip


def _privacy(manifest: dict[str, Any]) -> list[str]:
    """What consent and retention left out, when they left anything out (a card of a log without them says nothing)."""
    left_out = manifest.get("privacy", {})
    if not any(left_out.values()):
        return []
    said = ", ".join(f"{n} {REASONS.get(reason, reason)} ({reason})" for reason, n in left_out.items())
    return [
        f"- rows of the log (pairs and signals) left out for privacy (consent to training; retention to the "
        f"build's time, `built_at` in manifest.json): {said}"
    ]


def card(name: str, manifest: dict[str, Any], by_column: dict[str, dict[str, dict[str, int]]]) -> str:
    """The dataset card: YAML front matter naming the split files, then counts, selection and provenance.

    Deterministic (no build time), so two builds of the same input have the same card.
    """
    front = ["---", "configs:"]
    # every JSON-lines format is a config, TRL's standard one the default: `datasets` takes one file type for
    # all the configs of a folder, so the Parquet shards are read with load_dataset("parquet", data_dir=".../data").
    # Each config's description names the build's content hash: `datasets` caches a folder's rows under the
    # folder's name and a hash of the card's configs (not the files), so two builds of one name (another clone,
    # a folder deleted and built again) must differ in their configs or the second loads the first one's rows
    described = f"preflog build, content hash {manifest['content_hash']}"
    for fmt in JSONL:
        paths = sorted(f["path"] for f in manifest["files"] if f["path"].startswith(f"{fmt}/"))
        paths = [p for p in paths if not p.endswith(".provenance.jsonl")]
        if not paths:
            continue
        front += [f"- config_name: {fmt}", *(["  default: true"] if fmt == "trl" else [])]
        front += [f"  description: {described}", "  data_files:"]
        for path in paths:
            split = path.split("/")[-1].split(".")[0]
            front += [f"  - split: {split}", f"    path: {path}"]
    front += ["tags:", "- preference", "- rlhf", "- dpo", "- preflog", "---", ""]
    body = [
        f"# {name}",
        "",
        "Preference pairs built by preflog from the audit log at "
        f"`{manifest['log']}` ({len(manifest['sources'])} files; {manifest['pairs_selected']} pairs and "
        f"{manifest['signals_selected']} signals selected).",
        "",
        f"- rows per split: {', '.join(f'{s} {n}' for s, n in manifest['rows'].items())}",
        f"- exact duplicates merged into their first row (`votes`): {manifest['merged_duplicates']}",
        f"- rows with a contradicting pair ({manifest['selection']['contradictions']}): "
        f"{manifest['contradicted_rows']}",
        f"- prompts written in more than one way (case, white space): {manifest['near_duplicate_prompts']}",
        "- other records per split (JSON lines in kto/, listwise/, ties/): "
        + "; ".join(f"{r} {dict(n) or 0}" for r, n in manifest.get("records", {}).items()),
        f"- left out of a format, by reason: {json.dumps(manifest['left_out'], sort_keys=True)}",
        *_formats(manifest),
        *_privacy(manifest),
        *image_lines(manifest),
        *card_lines(manifest),
        "",
    ]
    for title, column in (("source", "source"), ("feedback kind", "kind"), ("model version", "model_version")):
        body += [*_table(title, by_column[column]), ""]
    body += [
        "## Selection",
        "",
        "```json",
        json.dumps(manifest["selection"], indent=2, sort_keys=True),
        "```",
        "",
        "## Audit-log watermark (last offset read per partition)",
        "",
        "```json",
        json.dumps(manifest["watermark"], indent=2),
        "```",
        "",
        f"Content hash: `{manifest['content_hash']}`. `preflog dataset verify` rechecks it and every file's "
        "sha256 (`manifest.json` has them, with the sha256 of every source file).",
        "",
    ]
    return "\n".join(front + body)
