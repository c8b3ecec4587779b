"""``preflog dataset build``: a pinned, immutable training set made from the audit log.

A build reads the pairs table from an explicit list of the log's files, hashes
each of them, selects and cleans the pairs (:mod:`preflog.dataset.select`)
and writes, into a folder of its own that is never rewritten:

* ``data/{split}-00000-of-00001.parquet``: one shard per split, no Arrow map
  columns, so ``datasets.load_dataset("parquet", data_dir=...)`` opens it as
  a DatasetDict;
* ``{format}/{split}.jsonl`` for TRL standard and conversational, OpenAI and
  NeMo-Aligner DPO (:mod:`preflog.dataset.jsonl`), each row with its
  provenance (OpenAI's in ``openai/{split}.provenance.jsonl``, line for line);
* ``kto/``, ``listwise/`` and ``ties/{split}.jsonl``: TRL's unpaired (KTO)
  examples behind a quality gate, whole rankings, and ties and both-bad
  answers (:mod:`preflog.dataset.derived`);
* ``state/pairs.parquet`` and ``state/unpaired.parquet``: the selected rows
  of the log, by id, so that ``--since`` this build reads only the files added
  since and gives what a full build gives;
* ``README.md``: a dataset card (Hugging Face conventions: the split files in
  its front matter; counts per split, source, kind and model version; the
  selection and the audit-log watermark);
* ``manifest.json``: the source files with their sha256, the full selection,
  row counts per split, every output file's sha256 and a content hash over
  the outputs and the selection. Two builds of the same log and selection
  have the same content hash; ``preflog dataset verify`` recomputes it.

The folder is written under a temporary name and renamed when complete, so a
build that dies leaves no half-written dataset under its name.

An incremental build (``since``) takes the previous build's selected rows
(their sha256 checked against its manifest), adds the selected rows of the
log's files it did not read, drops repeated ids as a full read does, and
cleans the whole as a full build would. It refuses when the selection differs
or when a file the previous build read is gone or has another size: a full
build would then give something else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .card import card, watermark
from .decontaminate import decontaminate, eval_prompts
from .derived import counts, kto_rows, listwise_rows, tie_rows
from .hashing import sha256_file
from .inputs import STATE, BuildError, Inputs, read_inputs
from .jsonl import LINES, write_lines
from .select import Selection, dataset_rows, near_duplicate_prompts

__all__ = ["MANIFEST", "SPLITS", "STATE", "BuildError", "build", "content_hash"]

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")


def content_hash(files: list[dict[str, Any]], selection: dict[str, Any]) -> str:
    """The hash of a build's content: its data files (path and sha256) and its selection.

    The card (``README.md``) is left out: it names the build; so are the selected rows under ``state/``,
    kept for the next incremental build. verify still checks both files' sha256.
    """
    hashed = [f for f in files if f["path"] != "README.md" and not f["path"].startswith(f"{STATE}/")]
    data = [(f["path"], f["sha256"]) for f in hashed]
    body = json.dumps({"files": data, "selection": selection}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _write_shards(rows: pa.Table, folder: Path) -> list[dict[str, Any]]:
    """``data/{split}-00000-of-00001.parquet``: the rows of each split, without their split column."""
    out = []
    for split in SPLITS:
        part = rows.filter(pa.compute.equal(rows.column("split"), split)).drop_columns(["split"])
        if part.num_rows == 0:
            continue
        (folder / "data").mkdir(parents=True, exist_ok=True)
        path = folder / "data" / f"{split}-00000-of-00001.parquet"
        pq.write_table(part, path, compression="zstd")
        out.append({"path": str(path.relative_to(folder)), "sha256": sha256_file(path), "rows": part.num_rows})
    return out


def _write_formats(tables: dict[str, pa.Table], folder: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Every JSON-lines format of the rows (pairs) and records; the files and what each format left out."""
    out: list[dict[str, Any]] = []
    left_out: dict[str, dict[str, int]] = {}
    for fmt in LINES:
        written, broken = write_lines(tables.get(fmt, tables["rows"]), fmt, folder, SPLITS)
        out += [{"path": str(p.relative_to(folder)), "sha256": sha256_file(p), "rows": n} for p, n in written]
        if broken:
            left_out[fmt] = broken
    return out, left_out


def _write_state(inputs: Inputs, folder: Path) -> list[dict[str, Any]]:
    """``state/{table}.parquet`` (the selected rows) and ``state/{table}.ids.parquet`` (every id read, its path)."""
    (folder / STATE).mkdir(parents=True)
    out = []
    for table in inputs.rows:
        for name, rows in ((f"{table}.parquet", inputs.rows[table]), (f"{table}.ids.parquet", inputs.ids[table])):
            path = folder / STATE / name
            # the same bytes however the rows came (list fields are named differently by DuckDB and Parquet)
            pq.write_table(rows.combine_chunks(), path, compression="zstd", store_schema=False)
            out.append({"path": f"{STATE}/{name}", "sha256": sha256_file(path), "rows": rows.num_rows})
    return out


def build(log_url: str, root: Path, name: str, selection: Selection, since: str | None = None) -> dict[str, Any]:
    """Build dataset ``name`` under ``root`` from the audit log at ``log_url``; its manifest.

    Args:
        log_url: the audit log's root.
        root: the datasets folder.
        name: the new build's name.
        selection: what to take and how to clean and split it.
        since: a previous build of the same selection: read only the log's files it did not read.

    Raises:
        BuildError: ``root/name`` exists already (a build is never rewritten), the log has no pairs, or
            ``since`` cannot be the base of this build.
    """
    folder = root / name
    if folder.exists():
        raise BuildError(f"dataset {name!r} exists already at {folder}: a build is never rewritten; pick a new name")
    config = dataclasses.asdict(selection)
    evaluation = Path(selection.decontaminate) if selection.decontaminate else None
    if evaluation is not None:
        if not evaluation.exists():
            raise BuildError(f"no evaluation file {evaluation} to decontaminate against")
        config["decontaminate_sha256"] = sha256_file(evaluation)  # the content depends on the file's text
    inputs = read_inputs(log_url, root, selection, config, since)
    sources, files, chosen = inputs.sources, inputs.files, inputs.rows
    rows = dataset_rows(chosen["pairs"], selection)
    kto, kto_left_out = kto_rows(chosen["unpaired"], chosen["pairs"], selection)
    records = {"kto": kto, "listwise": listwise_rows(chosen["pairs"], selection)}
    records["ties"] = tie_rows(chosen["pairs"], chosen["unpaired"], selection)
    decontamination = None
    if evaluation is not None:
        prompts = eval_prompts(evaluation)
        rows, dropped = decontaminate(rows, prompts, selection.ngram)
        for record, table in records.items():
            records[record], _ = decontaminate(table, prompts, selection.ngram, id_column=_RECORD_IDS[record])
        decontamination = {"file": str(evaluation), "sha256": config["decontaminate_sha256"], "dropped": dropped}
    temporary = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        outputs = _write_shards(rows, temporary)
        written, left_out = _write_formats({"rows": rows, **records}, temporary)
        outputs += written + _write_state(inputs, temporary)
        split_rows = {s: int(pa.compute.sum(pa.compute.equal(rows.column("split"), s)).as_py() or 0) for s in SPLITS}
        manifest: dict[str, Any] = {
            "name": name,
            "format": 2,
            "log": log_url,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "since": since,
            "selection": config,
            "sources": sources,
            "pairs_selected": chosen["pairs"].num_rows,
            "signals_selected": chosen["unpaired"].num_rows,
            "rows": split_rows,
            "records": {r: counts(table) for r, table in records.items()},
            "merged_duplicates": int(pa.compute.sum(rows.column("votes")).as_py() or 0) - rows.num_rows,
            "contradicted_rows": int(pa.compute.sum(pa.compute.greater(rows.column("opposing_votes"), 0)).as_py() or 0),
            "near_duplicate_prompts": near_duplicate_prompts(rows),
            "left_out": left_out,
            "decontamination": decontamination,
            "watermark": watermark(files["pairs"] + files["unpaired"]),
            "files": outputs,
        }
        if kto_left_out:
            manifest["left_out"]["kto"] = kto_left_out
        manifest["content_hash"] = content_hash(outputs, config)  # the card is not in it: it may name it
        readme = temporary / "README.md"
        readme.write_text(card(name, manifest, rows))
        outputs.append({"path": "README.md", "sha256": sha256_file(readme), "rows": rows.num_rows})
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            temporary.rename(folder)  # never onto a build: a folder that appeared meanwhile is not replaced
        except OSError as exc:
            if folder.exists():
                raise BuildError(f"dataset {name!r} was built by another run meanwhile; pick a new name") from exc
            raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest


#: the id column of each record set (decontamination drops rows by it)
_RECORD_IDS = {"kto": "example_id", "listwise": "feedback_id", "ties": "tie_id"}
