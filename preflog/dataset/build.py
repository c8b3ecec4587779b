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
  selection and the audit-log watermark; what consent and retention left out);
* ``manifest.json``: the source files with their sha256, the full selection,
  row counts per split, the rows consent and retention left out by reason
  (``privacy``), every output file's sha256 and a content hash over
  the outputs and the selection. Two builds of the same log and selection
  have the same content hash; ``preflog dataset verify`` recomputes it.

A build takes only rows whose consent allows training and whose retention has not run out at the build's
time (``built_at``; :mod:`preflog.dataset.consent`); rows stating no consent allow ``unstated_consent``
(the ``privacy.unstated_consent`` setting), which the selection records when it leaves training out.

The folder is written under a temporary name and renamed when complete, so a
build that dies leaves no half-written dataset under its name.

Memory is bounded, whatever the log's size: the log is read by DuckDB from its
files (:mod:`preflog.sinks.scan`) into a database on disk beside the build,
every step is a query over it with a memory limit (``memory_limit``; DuckDB
spills to disk beyond it), and every output is written batch by batch as the
query produces it. ``formats`` chooses the outputs (the card and the manifest
say which) and ``compress="gzip"`` writes the JSON lines as ``.jsonl.gz``,
which ``datasets.load_dataset`` reads as they are.

An incremental build (``since``) takes the previous build's selected rows
(their sha256 checked against its manifest), adds the selected rows of the
log's files it did not read, drops repeated ids as a full read does, and
cleans the whole as a full build would: it reads only the new files, but
still rewrites every output and the state (the selected rows of the whole
log), as a full build writes them. It refuses when the selection differs
or when a file the previous build read is gone or has another size: a full
build would then give something else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.erase import LINEAGE
from preflog.sinks.scan import connect
from preflog.sinks.scan import memory_limit as bytes_limit

from .card import JSONL, card, counts, watermark
from .consent import Purpose
from .decontaminate import decontaminate, eval_prompts
from .dedup import TextKeys, contradictions_dropped, dataset_rows, grouped_rows, text_keys
from .derived import RECORD_IDS, kto_rows, listwise_rows, tie_rows
from .hashing import sha256_file
from .images import check_images
from .inputs import CHOSEN, STATE, BuildError, Inputs, read_inputs
from .jsonl import COMPRESSIONS, LINES, write_lines
from .messages import PLAIN, Shape, as_json_types, shape_of, shard_select
from .select import ORDER_KEYS, ROW_KEYS, Selection, dataset_view, near_duplicate_prompts
from .shards import ParquetOut, rows_per_group
from .sort import sorted_batches
from .subjects import config_of, row_subject_sql, write_subject_shards

__all__ = ["FORMATS", "MANIFEST", "SPLITS", "STATE", "BuildError", "build", "content_hash"]

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
#: what a build can write: the Parquet shards (data/) and each JSON-lines format
FORMATS: tuple[str, ...] = ("parquet", *JSONL)


#: the text columns of a table's selected rows (their messages hold the same texts again)
_TEXTS = {"pairs": ("prompt", "chosen", "rejected", "prompt_key"), "unpaired": ("prompt", "completion", "prompt_key")}


class Sorted:
    """The build database's relations read back sorted, in bounded memory (:func:`sorted_batches`)."""

    def __init__(self, con: Any, budget: int, work: Path) -> None:
        self.con, self.budget, self.work = con, budget, work

    def batches(self, source: str, select: str, keys: list[str]) -> Iterator[pa.Table]:
        """The rows of ``SELECT {select} FROM {source} ORDER BY {keys}``, a bucket at a time."""
        return sorted_batches(self.con, source, select, keys, self.budget, self.work)


def content_hash(files: list[dict[str, Any]], selection: dict[str, Any]) -> str:
    """The hash of a build's content: its data files (path and sha256) and its selection.

    The card (``README.md``) is left out: it names the build; so are the selected rows under ``state/``,
    kept for the next incremental build. verify still checks both files' sha256.
    """
    hashed = [f for f in files if f["path"] != "README.md" and not f["path"].startswith(f"{STATE}/")]
    data = [(f["path"], f["sha256"]) for f in hashed]
    body = json.dumps({"files": data, "selection": selection}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _entry(folder: Path, path: Path, rows: int) -> dict[str, Any]:
    relative = str(path.relative_to(folder))
    return {"path": relative, "sha256": sha256_file(path), "rows": rows, "bytes": path.stat().st_size}


def _write_shards(out: Sorted, folder: Path, shape: Shape = PLAIN) -> list[dict[str, Any]]:
    """``data/{split}-00000-of-00001.parquet``: the rows of each split, without their split column.

    Their messages are shaped as trainers take them (:mod:`.messages`: plain ``{role, content}`` unless the
    build holds tool calls, tools or images).
    """
    group = rows_per_group(out.con, "rows", ("prompt", "chosen", "rejected"))
    shards = {s: ParquetOut(folder / "data" / f"{s}-00000-of-00001.parquet", group, compression="zstd") for s in SPLITS}
    try:
        for batch in out.batches("rows", shard_select(shape), ROW_KEYS):
            for split, shard in shards.items():
                part = batch.filter(pc.equal(batch.column("split"), split))
                shard.write(as_json_types(part.drop_columns(["split"]), shape))
    finally:
        written = [split for split, shard in shards.items() if shard.close()]
    return [_entry(folder, shards[s].path, shards[s].rows) for s in written]


def _write_formats(
    out: Sorted,
    folder: Path,
    formats: tuple[str, ...],
    compress: str,
    step: Callable[[str], None],
    shape: Shape = PLAIN,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Every chosen JSON-lines format of the rows (pairs) and records; the files and what each format left out."""
    files: list[dict[str, Any]] = []
    left_out: dict[str, dict[str, int]] = {}
    for fmt in LINES:
        if fmt not in formats:
            continue
        step(f"writing {fmt}/")
        source = fmt if fmt in RECORD_IDS else "rows"
        written, broken = write_lines(source, fmt, folder, SPLITS, compress, out.batches, shape)
        files += [_entry(folder, p, n) for p, n in written]
        if broken:
            left_out[fmt] = broken
    return files, left_out


def _write_state(out: Sorted, folder: Path) -> list[dict[str, Any]]:
    """``state/{table}.parquet`` (the selected rows) and ``state/{table}.ids.parquet`` (every id read, its path)."""
    (folder / STATE).mkdir(parents=True)
    files = []
    for table, chosen in CHOSEN.items():
        for name, relation in ((f"{table}.parquet", chosen), (f"{table}.ids.parquet", f"{table}_ids")):
            texts, keys = (_TEXTS[table], ORDER_KEYS[table]) if relation == chosen else (("id", "path"), ["id"])
            path = folder / STATE / name
            writer = ParquetOut(path, rows_per_group(out.con, relation, texts), compression="zstd", store_schema=False)
            schema = None
            select = "* EXCLUDE (__rid)" if relation == chosen else "*"
            for batch in out.batches(relation, select, keys):
                writer.write(batch)
                schema = batch.schema
            writer.close(schema)
            files.append(_entry(folder, path, writer.rows))
    return files


def _write_lineage(con: Any, folder: Path) -> dict[str, Any]:
    """``lineage/subjects.parquet``: every subject (pseudonym) of a row the build selected, once, sorted."""
    (folder / LINEAGE).parent.mkdir(parents=True)
    subjects = " UNION ".join(f"SELECT subject FROM {chosen} WHERE subject IS NOT NULL" for chosen in CHOSEN.values())
    path = folder / LINEAGE
    quoted = str(path).replace("'", "''")
    con.execute(f"COPY (SELECT DISTINCT subject FROM ({subjects}) ORDER BY subject) TO '{quoted}' (FORMAT parquet)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{quoted}')").fetchall()[0][0]
    return _entry(folder, path, rows)


def _records(con: Any, selection: Selection) -> dict[str, int]:
    """The KTO view, the listwise and tie tables of the build database; the KTO examples left out, by reason."""
    con.execute(f"CREATE TEMP VIEW kto_all AS {kto_rows(selection)}")
    reasons = "SELECT reason, count(*) FROM kto_all WHERE reason IS NOT NULL GROUP BY ALL"
    left_out = dict(con.execute(reasons).fetchall())
    con.execute("CREATE TEMP VIEW kto AS SELECT * EXCLUDE (reason) FROM kto_all WHERE reason IS NULL")
    con.execute(f"CREATE TABLE listwise AS {listwise_rows(selection)}")
    con.execute(f"CREATE TABLE ties AS {tie_rows(selection)}")
    return {str(k): int(v) for k, v in sorted(left_out.items())}


def _clean(con: Any, selection: Selection, keys: TextKeys, subject: str | None, kept: str) -> int:
    """Table ``kept``: the pairs' kept rows (:mod:`.dedup`), grouped within ``subject``; the pairs its policy drops."""
    query, args = grouped_rows("pairs", selection, subject, keys)
    con.execute(f"CREATE TABLE {kept}_groups AS {query}", args)
    con.execute(f"CREATE TABLE {kept} AS {dataset_rows(f'{kept}_groups', selection)}")
    dropped = _scalar(con, contradictions_dropped(f"{kept}_groups", selection))
    con.execute(f"DROP TABLE {kept}_groups")  # the build database is in memory: its tables count against the limit
    return dropped


def _drop_decontaminated(con: Any, kept: str = "kept", rows: str = "rows", records: bool = True) -> None:
    """Leave out of the rows and records every id :func:`decontaminate` found (``{relation}_gone``)."""
    gone_pairs = f"SELECT k.rid FROM {kept} k JOIN pairs c ON c.__rid = k.rid WHERE c.pair_id IN (FROM {rows}_gone)"
    con.execute(f"DELETE FROM {kept} WHERE rid IN ({gone_pairs})")
    if not records:
        return
    con.execute(
        "CREATE OR REPLACE TEMP VIEW kto AS SELECT * EXCLUDE (reason) FROM kto_all WHERE reason IS NULL "
        "AND NOT coalesce(example_id IN (SELECT id FROM kto_gone), FALSE)"
    )
    for record in ("listwise", "ties"):
        con.execute(f"DELETE FROM {record} WHERE {RECORD_IDS[record]} IN (SELECT id FROM {record}_gone)")


def _split_counts(con: Any, relation: str) -> dict[str, int]:
    found = con.execute(f"SELECT split, count(*) FROM {relation} GROUP BY split ORDER BY split").fetchall()
    return {str(split): int(n) for split, n in found}


def _scalar(con: Any, query: str) -> int:
    return int(con.execute(query).fetchall()[0][0] or 0)


def build(
    log_url: str,
    root: Path,
    name: str,
    selection: Selection,
    since: str | None = None,
    memory_limit: str | int | None = None,
    formats: tuple[str, ...] = FORMATS,
    compress: str = "none",
    on_step: Callable[[str], None] | None = None,
    unstated_consent: tuple[str, ...] | list[str] = ("training", "analytics"),
    keyring: Any = None,
) -> dict[str, Any]:
    """Build dataset ``name`` under ``root`` from the audit log at ``log_url``; its manifest.

    Args:
        log_url: the audit log's root.
        root: the datasets folder.
        name: the new build's name.
        selection: what to take and how to clean and split it.
        since: a previous build of the same selection: read only the log's files it did not read.
        memory_limit: the build's memory (``"1GB"``, ``"10%"``, bytes; None:
            :data:`preflog.sinks.scan.DEFAULT_MEMORY`), at least 512MB; beyond it the build spills to a folder
            beside the build.
        formats: the outputs to write, of :data:`FORMATS` (the content hash covers the files written).
        compress: ``"none"`` or ``"gzip"`` (JSON lines as ``.jsonl.gz``).
        on_step: called with the name of each step as it starts (a progress display).
        unstated_consent: what a row stating no consent allows (``privacy.unstated_consent``); without
            ``training`` such rows are left out, and the selection records it.
        keyring: a :class:`preflog.privacy.keyring.Keyring` to open a sealed log's personal fields (a sealed log
            is refused without one); its erased rows are left out and counted, every row carries its ``subject``
            and the build lists the subjects it holds in ``lineage/subjects.parquet`` (``preflog erase`` reads it).

    Raises:
        BuildError: ``root/name`` exists already (a build is never rewritten), the log has no pairs, or
            ``since`` cannot be the base of this build.
        ValueError: an unknown format or compression, an unknown purpose in ``unstated_consent``, or a memory
            limit that is not a size.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress={compress!r}: choose one of {', '.join(COMPRESSIONS)}")
    limit = bytes_limit(memory_limit)  # a limit that is not a size fails before anything is written
    if limit < 512 * 10**6:
        raise ValueError(f"memory limit {memory_limit!r}: a build needs at least 512MB (it spills beyond that)")
    purpose = Purpose("training", tuple(unstated_consent), now=datetime.now(timezone.utc).replace(microsecond=0))
    step = on_step or (lambda _: None)
    folder = root / name
    if folder.exists():
        raise BuildError(f"dataset {name!r} exists already at {folder}: a build is never rewritten; pick a new name")
    config = config_of(dataclasses.asdict(selection))
    if "training" not in purpose.unstated:  # recorded only then: every build before consent existed allowed it
        config["unstated_consent"] = list(purpose.unstated)
    evaluation = Path(selection.decontaminate) if selection.decontaminate else None
    if evaluation is not None:
        if not evaluation.exists():
            raise BuildError(f"no evaluation file {evaluation} to decontaminate against")
        config["decontaminate_sha256"] = sha256_file(evaluation)  # the content depends on the file's text
    temporary = root / f".{name}.tmp-{os.getpid()}"
    work = root / f".{name}.work-{os.getpid()}"  # the build's database and what it spills: removed at the end
    for stale in (temporary, work):
        shutil.rmtree(stale, ignore_errors=True)
    work.mkdir(parents=True)
    temporary.mkdir(parents=True)
    con = None
    try:
        # the limit is the build's: DuckDB takes three quarters (it needs a few vectors of long texts per thread,
        # and the input's row groups), a sort's bucket a sixteenth (it is copied a few times over while sorted and
        # written); Python, its libraries and the writers' row groups take about 300 MB beside it
        con = connect(limit * 3 // 4, spill=str(work / "spill"), database=str(work / "build.duckdb"))
        # a join's right side is its hash table, as the queries are written: DuckDB's estimates would otherwise
        # build it from the log's rows, texts and all, where the narrow side (the kept rows) belongs
        con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        con.execute("SET preserve_insertion_order = false")  # every output is sorted by its keys (dataset/sort.py)

        out = Sorted(con, budget=limit // 16, work=work)
        step("reading the log")
        inputs = read_inputs(con, log_url, root, selection, config, since, purpose, keyring)
        step("cleaning the pairs")
        keys = text_keys(con, "pairs")  # images, tool calls and tools are compared where a pair has them
        policy_dropped = _clean(con, selection, keys, None, "kept")
        con.execute(f"CREATE TEMP VIEW rows AS {dataset_view('pairs', 'kept', subject=inputs.sealed)}")
        if selection.per_subject:  # the shards' own grouping, within each subject; the other outputs never see it
            _clean(con, selection, keys, row_subject_sql(inputs.sealed), "subject_kept")
            con.execute(f"CREATE TEMP VIEW subject_rows AS {dataset_view('pairs', 'subject_kept', inputs.sealed)}")
        kto_left_out = _records(con, selection)
        decontamination = None
        if evaluation is not None:
            step("decontaminating")
            prompts = eval_prompts(evaluation)
            dropped = decontaminate(con, "rows", prompts, selection.ngram)
            for record, column in RECORD_IDS.items():
                decontaminate(con, record, prompts, selection.ngram, id_column=column)
            _drop_decontaminated(con)
            if selection.per_subject:
                decontaminate(con, "subject_rows", prompts, selection.ngram)
                _drop_decontaminated(con, "subject_kept", "subject_rows", records=False)
            decontamination = {"file": str(evaluation), "sha256": config["decontaminate_sha256"], "dropped": dropped}
        step("checking images")
        also = ("subject_kept",) if selection.per_subject else ()
        images = check_images(con, also=also)  # rows whose image changed are left out of every output
        shape = shape_of(con, "rows")
        outputs: list[dict[str, Any]] = []
        if "parquet" in formats:
            step("writing data/ (Parquet)")
            outputs += _write_shards(out, temporary, shape)
        written, left_out = _write_formats(out, temporary, formats, compress, step, shape)
        outputs += written
        step("writing state/")
        outputs += _write_state(out, temporary)
        if inputs.sealed:
            outputs.append(_write_lineage(con, temporary))
        per_subject = None
        if selection.per_subject:
            step("writing subjects/ (Parquet)")
            shards, per_subject = write_subject_shards(
                out, temporary, selection.min_per_subject, inputs.sealed, SPLITS, ROW_KEYS, shape
            )
            outputs += [_entry(temporary, p, n) for p, n in shards]
        manifest = _manifest(
            con, name, log_url, since, config, inputs, outputs, left_out, formats, compress, policy_dropped
        )
        manifest["built_at"] = purpose.now.isoformat(timespec="seconds")  # the time retention was measured to
        if kto_left_out and "kto" in formats:
            manifest["left_out"]["kto"] = kto_left_out
        if inputs.history:  # pairs and signals whose conversation history does not resolve (dataset/histories.py)
            manifest["left_out"]["history"] = inputs.history
        manifest["decontamination"] = decontamination
        if shape.rich:  # a build of plain text messages says nothing: its manifest is as it was
            manifest["messages"] = shape.describe()
        if images is not None:
            manifest["images"] = images
        manifest["content_hash"] = content_hash(outputs, config)  # the card is not in it: it may name it
        if per_subject is not None:
            manifest["per_subject"] = per_subject
        by_column = {c: counts(con, "rows", c) for c in ("source", "kind", "model_version")}
        readme = temporary / "README.md"
        readme.write_text(card(name, manifest, by_column))
        outputs.append({"path": "README.md", "sha256": sha256_file(readme), "rows": sum(manifest["rows"].values())})
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        con.close()
        con = None
        try:
            temporary.rename(folder)  # never onto a build: a folder that appeared meanwhile is not replaced
        except OSError as exc:
            if folder.exists():
                raise BuildError(f"dataset {name!r} was built by another run meanwhile; pick a new name") from exc
            raise
    except BaseException as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        for said in ("KeyError_: ", "SealError: "):  # a key the keyring could not use, raised within DuckDB
            if said in str(exc):
                raise BuildError(f"the log's sealed fields do not open: {str(exc).split(said, 1)[1].strip()}") from None
        if type(exc).__name__ == "OutOfMemoryException":  # duckdb's, imported lazily
            raise BuildError(
                f"the build ran out of memory under a limit of {limit / 1e6:,.0f} MB: DuckDB works on 2,048 rows "
                "at a time per thread, so rows of long texts need more; give it more with --memory-limit (e.g. 2GB)"
            ) from exc
        raise
    finally:
        if con is not None:
            con.close()
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _manifest(
    con: Any,
    name: str,
    log_url: str,
    since: str | None,
    config: dict[str, Any],
    inputs: Inputs,
    outputs: list[dict[str, Any]],
    left_out: dict[str, dict[str, int]],
    formats: tuple[str, ...],
    compress: str,
    policy_dropped: int,
) -> dict[str, Any]:
    split_rows = _split_counts(con, "kept")
    manifest: dict[str, Any] = {
        "name": name,
        "format": 2,
        "log": log_url,
        "built_at": None,  # build() says when: the time retention is measured to
        "since": since,
        "selection": config,
        "sources": inputs.sources,
        "pairs_selected": _scalar(con, f"SELECT count(*) FROM {CHOSEN['pairs']}"),
        "signals_selected": _scalar(con, f"SELECT count(*) FROM {CHOSEN['unpaired']}"),
        "rows": {s: split_rows.get(s, 0) for s in SPLITS},
        "records": {r: _split_counts(con, r) for r in RECORD_IDS},
        "merged_duplicates": _scalar(con, "SELECT sum(votes) - count(*) FROM kept"),
        "contradicted_rows": _scalar(con, "SELECT count(*) FROM kept WHERE opposing_votes > 0"),
        "contradictions_dropped": policy_dropped,  # the pairs (each vote of a group) the contradiction policy left out
        "near_duplicate_prompts": near_duplicate_prompts(con, "rows"),
        "left_out": left_out,
        "privacy": inputs.left_out,
        "decontamination": None,
        "watermark": watermark(inputs.files["pairs"] + inputs.files["unpaired"]),
        "files": outputs,
    }
    if tuple(formats) != FORMATS or compress != "none":  # a build of every format, uncompressed, says nothing
        manifest["formats"] = [f for f in FORMATS if f in formats]
        manifest["compress"] = compress
    manifest["bytes"] = _bytes_per_format(outputs)
    return manifest


def _bytes_per_format(outputs: list[dict[str, Any]]) -> dict[str, int]:
    """The bytes each output folder (data/, a format, state/) takes."""
    sizes: dict[str, int] = {}
    for f in outputs:
        top = f["path"].split("/")[0]
        sizes[top] = sizes.get(top, 0) + f.get("bytes", 0)
    return sizes
