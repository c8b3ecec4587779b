"""``preflog dataset build``: a pinned, immutable training set made from the audit log.

A build reads the pairs table from an explicit list of the log's files, hashes
each of them, selects and cleans the pairs (:mod:`preflog.dataset.select`)
and writes, into a folder of its own that is never rewritten:

* ``data/{split}-00000-of-00001.parquet``: one shard per split, no Arrow map
  columns, so ``datasets.load_dataset("parquet", data_dir=...)`` opens it as
  a DatasetDict;
* ``{format}/{split}.jsonl`` for TRL standard and conversational, OpenAI and
  NeMo-Aligner DPO (:mod:`preflog.dataset.formats`), each row with its
  provenance (OpenAI's in ``openai/{split}.provenance.jsonl``, line for line);
* ``README.md``: a dataset card (Hugging Face conventions: the split files in
  its front matter; counts per split, source, kind and model version; the
  selection and the audit-log watermark);
* ``manifest.json``: the source files with their sha256, the full selection,
  row counts per split, every output file's sha256 and a content hash over
  the outputs and the selection. Two builds of the same log and selection
  have the same content hash; ``preflog dataset verify`` recomputes it.

The folder is written under a temporary name and renamed when complete, so a
build that dies leaves no half-written dataset under its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from preflog.sinks.read import data_files, read_table
from preflog.sinks.storage import Storage

from .card import card, watermark
from .decontaminate import decontaminate, eval_prompts
from .formats import FORMATS, PROVENANCE, convert
from .select import Selection, dataset_rows, near_duplicate_prompts

__all__ = ["MANIFEST", "SPLITS", "BuildError", "build", "content_hash", "sha256_file", "sha256_source"]

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")


class BuildError(Exception):
    """A build that cannot be made (its name is taken, the log is missing)."""


def _sha256(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a local file, hex."""
    with path.open("rb") as f:
        return _sha256(f)


def sha256_source(storage: Storage, relative: str) -> str:
    """The sha256 of a file of the audit log, read in blocks (a file is never held whole), hex.

    Raises:
        FileNotFoundError: the log no longer has it.
    """
    with storage.fs.open(storage.path(relative), "rb") as f:
        return _sha256(f)


def content_hash(files: list[dict[str, Any]], selection: dict[str, Any]) -> str:
    """The hash of a build's content: its data files (path and sha256) and its selection.

    The card (``README.md``) is left out: it names the build. verify still checks its sha256.
    """
    data = [(f["path"], f["sha256"]) for f in files if f["path"] != "README.md"]
    body = json.dumps({"files": data, "selection": selection}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _sources(storage: Storage, files: list[str]) -> list[dict[str, Any]]:
    return [{"path": relative, "sha256": sha256_source(storage, relative)} for relative in files]


def _write_split(rows: pa.Table, split: str, folder: Path, left_out: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    part = rows.filter(pa.compute.equal(rows.column("split"), split)).drop_columns(["split"])
    if part.num_rows == 0:
        return []
    (folder / "data").mkdir(parents=True, exist_ok=True)
    parquet = folder / "data" / f"{split}-00000-of-00001.parquet"
    pq.write_table(part, parquet, compression="zstd")
    written = [(parquet, part.num_rows)]
    files = {fmt: folder / fmt / f"{split}.jsonl" for fmt in FORMATS}
    files["openai-provenance"] = folder / "openai" / f"{split}.provenance.jsonl"
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    handles = {fmt: path.open("w", encoding="utf-8") for fmt, path in files.items()}
    counts: Counter[str] = Counter()
    try:
        for batch in part.to_batches(max_chunksize=10_000):
            for row in batch.to_pylist():
                for fmt in FORMATS:
                    out = convert(row, fmt, left_out.setdefault(fmt, Counter()))
                    if out is None:
                        continue
                    handles[fmt].write(json.dumps(out, ensure_ascii=False) + "\n")
                    counts[fmt] += 1
                    if fmt == "openai":
                        line = json.dumps({k: row.get(k) for k in PROVENANCE}, ensure_ascii=False)
                        handles["openai-provenance"].write(line + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    counts["openai-provenance"] = counts["openai"]
    written += [(files[fmt], counts[fmt]) for fmt in files]
    return [{"path": str(p.relative_to(folder)), "sha256": sha256_file(p), "rows": n} for p, n in written]


def build(log_url: str, root: Path, name: str, selection: Selection) -> dict[str, Any]:
    """Build dataset ``name`` under ``root`` from the audit log at ``log_url``; its manifest.

    Raises:
        BuildError: ``root/name`` exists already (a build is never rewritten), or the log has no pairs.
    """
    folder = root / name
    if folder.exists():
        raise BuildError(f"dataset {name!r} exists already at {folder}: a build is never rewritten; pick a new name")
    storage = Storage(log_url)
    try:
        files = data_files(storage, "pairs", log_url)
    except FileNotFoundError as exc:
        raise BuildError(str(exc)) from exc
    sources = _sources(storage, files)
    pairs = read_table(log_url, "pairs", files=files)
    rows = dataset_rows(pairs, selection)
    config = dataclasses.asdict(selection)
    decontamination = None
    if selection.decontaminate:
        evaluation = Path(selection.decontaminate)
        if not evaluation.exists():
            raise BuildError(f"no evaluation file {evaluation} to decontaminate against")
        rows, dropped = decontaminate(rows, eval_prompts(evaluation), selection.ngram)
        decontamination = {"file": str(evaluation), "sha256": sha256_file(evaluation), "dropped": dropped}
        config["decontaminate_sha256"] = decontamination["sha256"]  # the content depends on the file's text
    temporary = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        left_out: dict[str, Counter[str]] = {}
        outputs = [f for split in SPLITS for f in _write_split(rows, split, temporary, left_out)]
        counts = {s: int(pa.compute.sum(pa.compute.equal(rows.column("split"), s)).as_py() or 0) for s in SPLITS}
        manifest: dict[str, Any] = {
            "name": name,
            "format": 1,
            "log": log_url,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "selection": config,
            "sources": sources,
            "pairs_read": pairs.num_rows,
            "rows": counts,
            "merged_duplicates": int(pa.compute.sum(rows.column("votes")).as_py() or 0) - rows.num_rows,
            "contradicted_rows": int(pa.compute.sum(pa.compute.greater(rows.column("opposing_votes"), 0)).as_py() or 0),
            "near_duplicate_prompts": near_duplicate_prompts(rows),
            "left_out": {fmt: dict(reasons) for fmt, reasons in left_out.items() if reasons},
            "decontamination": decontamination,
            "watermark": watermark(files),
            "files": outputs,
        }
        readme = temporary / "README.md"
        readme.write_text(card(name, manifest, rows))
        outputs.append({"path": "README.md", "sha256": sha256_file(readme), "rows": rows.num_rows})
        manifest["content_hash"] = content_hash(outputs, config)
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        temporary.rename(folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest
