"""The baselines of the dataset-build and report benchmarks: DuckDB's own scan of the same files, no preflog.

Each runs in a child process (:data:`BUILD_CHILD`, :data:`REPORT_CHILD`) under the memory limit
preflog had, spilling to the scratch folder, and prints ``count seconds peak_kb`` last
(:func:`report_rows.peak_rss_kb`).

* :func:`build`: ``read_parquet([...])`` of the log's pair files, the first copy of each pair_id
  kept (path order; the later copies found by a narrow scan and anti-joined), exact duplicates
  (prompt, chosen, rejected) grouped by the md5 of their texts with their votes, the columns a
  dataset row has, a split from the normalised prompt's md5, sorted by pair_id into a table; then
  the same outputs as the build: a Parquet file per split (zstd) and, per JSON-lines format, a
  file per split by ``COPY ... TO`` with the build's compression. Each step is written the cheap
  way, so the ratio to it is not flattered: at 200k pairs, windows over whole rows (dedupe and
  merge) took 1.3x the time and 1.2 GB, above the 1 GiB limit; the prompt is normalised
  (``regexp_replace``, about 20 MB/s) once per merged row, not per pair.
* :func:`report`: one scan of the same files (the later copies of an id anti-joined, as for the
  build) into a narrow table (texts' lengths, not texts), then a few GROUP BY aggregates written
  as Parquet: model pairs, sources, days with latency quantiles, judgements per request.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from report_rows import peak_rss_kb

__all__ = ["BUILD_CHILD", "JSON_FORMATS", "REPORT_CHILD", "build", "report"]

BUILD_CHILD = "from duckdb_baseline import main; main('build')"
REPORT_CHILD = "from duckdb_baseline import main; main('report')"

_KEEP = """
    prompt, chosen, rejected, prompt_messages, chosen_messages, rejected_messages,
    pair_id, request_id, feedback_id, model.name AS model, model.version AS model_version,
    chosen_model.name AS chosen_model, rejected_model.name AS rejected_model,
    CAST(source.type AS VARCHAR) AS source, source.id AS source_id, source.version AS source_version,
    CAST(feedback_kind AS VARCHAR) AS kind, explicit, margin, chosen_score, rejected_score,
    CAST(feedback_time AS VARCHAR) AS feedback_time, context.tenant AS tenant, context.user_id AS user_id
"""
_PROVENANCE = ("pair_id, request_id, model, model_version, source, kind, margin, chosen_score, rejected_score, "
               "votes, votes / 1.0 AS weight")  # fmt: skip
_PROMPT = (
    "CASE WHEN len(coalesce(prompt_messages, [])) > 0 THEN "
    "array_to_string(list_transform(prompt_messages, lambda m: m.content), chr(10) || chr(10)) ELSE prompt END"
)
_INPUT = "CASE WHEN len(coalesce(prompt_messages, [])) > 0 THEN prompt_messages ELSE [{'role': 'user', 'content': prompt}] END"  # noqa: E501
_ANSWER = "[{{'role': 'assistant', 'content': {0}}}]"
#: the JSON-lines formats of a pair, as the columns of one line (openai: its provenance in a file beside it)
JSON_FORMATS: dict[str, str] = {
    "trl": f"{_PROMPT} AS prompt, chosen, rejected, {_PROVENANCE}",
    "trl-conversational": f"{_INPUT} AS prompt, {_ANSWER.format('chosen')} AS chosen, "
    f"{_ANSWER.format('rejected')} AS rejected, {_PROVENANCE}",
    "openai": f"{{'messages': {_INPUT}}} AS input, {_ANSWER.format('chosen')} AS preferred_output, "
    f"{_ANSWER.format('rejected')} AS non_preferred_output",
    "openai-provenance": _PROVENANCE,
    "nemo": f"{_PROMPT} AS prompt, chosen AS chosen_response, rejected AS rejected_response, {_PROVENANCE}",
}
_SPLIT = """CASE WHEN CAST(('0x' || substr(md5('0:' || prompt_key), 1, 12)) AS UBIGINT) / 281474976710656.0 < 0.1
    THEN 'test' ELSE 'train' END"""


def connect(limit: str | None, spill: Path) -> Any:
    """DuckDB in UTC, with preflog's memory limit (its default when None), spilling to ``spill``."""
    import duckdb

    try:
        from preflog.sinks.scan import memory_limit

        size = memory_limit(limit)
    except ImportError:  # before the streaming reader: the same default
        size = min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 8, 2**30)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{size}B'")
    con.execute(f"SET temp_directory = '{spill}'")
    return con


def _files(log: Path) -> str:
    paths = sorted(str(p) for p in (log / "pairs").rglob("*.parquet"))
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


def _copies(con: Any, source: str) -> None:
    """Table ``copies``: every copy of a pair_id after its first (path order), from a narrow scan of ``source``."""
    con.execute(f"""
        CREATE TEMP TABLE copies AS SELECT filename, file_row_number FROM {source}
        QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY filename, file_row_number) > 1
    """)


def build(con: Any, log: Path, out: Path, formats: list[str], compress: str) -> int:
    """Rows as a dataset build makes them, written in ``formats`` (``parquet`` and :data:`JSON_FORMATS`)."""
    source = f"read_parquet({_files(log)}, filename = true, file_row_number = true)"
    # DuckDB's ORDER BY of rows of long texts needs memory in proportion to them (under 1 GiB it failed at 1M
    # realistic pairs): the baseline of time gets 8 GB, and its peak RSS is printed as it is
    con.execute("SET memory_limit = '8GB'")
    _copies(con, source)
    con.execute(f"""
        CREATE TEMP VIEW firsts AS
        SELECT * EXCLUDE (filename, file_row_number) FROM {source} ANTI JOIN copies USING (filename, file_row_number)
    """)
    con.execute("""
        CREATE TEMP TABLE winners AS  -- one pair per (prompt, chosen, rejected), by the md5 of the three texts
        SELECT arg_min(pair_id, (pair_id, feedback_id, feedback_time)) AS pair_id, count(*) AS votes
        FROM firsts GROUP BY md5_number(prompt || chr(0) || chosen || chr(0) || rejected)
    """)
    con.execute(f"""
        CREATE TEMP TABLE rows AS
        SELECT * EXCLUDE (prompt_key), {_SPLIT} AS split FROM (
            SELECT {_KEEP}, votes, lower(regexp_replace(trim(prompt), '\\s+', ' ', 'g')) AS prompt_key
            FROM firsts JOIN winners USING (pair_id)
        ) ORDER BY pair_id
    """)
    suffix, options = (".jsonl.gz", ", COMPRESSION gzip") if compress == "gzip" else (".jsonl", "")
    for split in ("train", "test"):
        rows = f"FROM rows WHERE split = '{split}'"  # in pair_id order: a table scan keeps insertion order
        for fmt in formats:
            if fmt == "parquet":
                (out / "data").mkdir(parents=True, exist_ok=True)
                target = out / "data" / f"{split}-00000-of-00001.parquet"
                con.execute(f"COPY (SELECT * EXCLUDE (split) {rows}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
                continue
            for name in (fmt, f"{fmt}-provenance") if fmt == "openai" else (fmt,):
                (out / fmt).mkdir(parents=True, exist_ok=True)
                target = out / fmt / f"{split}{'.provenance' if name != fmt else ''}{suffix}"
                con.execute(f"COPY (SELECT {JSON_FORMATS[name]} {rows}) TO '{target}' (FORMAT json{options})")
    return int(con.execute("SELECT count(*) FROM rows").fetchone()[0])


_MODEL = "{m}.name || '@' || coalesce({m}.version, '-')"
_AGGREGATES = {
    "models": "SELECT chosen_id, rejected_id, source, count(*) AS n, avg(chosen_len - rejected_len) AS longer, "
    "sum((chosen_len > rejected_len)::INT) AS longer_won, sum((chosen_index < rejected_index)::INT) AS first_won "
    "FROM pairs GROUP BY ALL",
    "days": "SELECT date_trunc('day', feedback_time) AS day, source, count(*) AS n, "
    "approx_quantile(join_latency_ms, [0.5, 0.9, 0.99]) AS latency FROM pairs GROUP BY ALL",
    "coverage": "SELECT judgements, count(*) AS requests FROM "
    "(SELECT request_id, count(*) AS judgements FROM pairs GROUP BY request_id) GROUP BY ALL",
    "annotators": "SELECT source, source_id, count(*) AS n, count(DISTINCT request_id) AS requests "
    "FROM pairs GROUP BY ALL",
}


def report(con: Any, log: Path, out: Path) -> int:
    """A narrow table of the pairs (each id's first copy), then :data:`_AGGREGATES` written as Parquet."""
    source = f"read_parquet({_files(log)}, filename = true, file_row_number = true)"
    _copies(con, source)
    con.execute(f"""
        CREATE TEMP TABLE pairs AS
        SELECT pair_id, request_id, CAST(source.type AS VARCHAR) AS source, coalesce(source.id, '-') AS source_id,
               {_MODEL.format(m="coalesce(chosen_model, model)")} AS chosen_id,
               {_MODEL.format(m="coalesce(rejected_model, model)")} AS rejected_id,
               chosen_index, rejected_index, length(chosen) AS chosen_len, length(rejected) AS rejected_len,
               feedback_time, join_latency_ms
        FROM {source} ANTI JOIN copies USING (filename, file_row_number)
    """)
    out.mkdir(parents=True, exist_ok=True)
    for name, query in _AGGREGATES.items():
        con.execute(f"COPY ({query}) TO '{out / name}.parquet' (FORMAT parquet)")
    return int(con.execute("SELECT count(*) FROM pairs").fetchone()[0])


def main(what: str) -> None:
    """``build LOG OUT LIMIT FORMATS COMPRESS`` or ``report LOG OUT LIMIT`` (LIMIT '' for the default)."""
    log, out, limit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None
    started = time.perf_counter()
    con = connect(limit, out.parent / f"{out.name}-spill")
    n = build(con, log, out, sys.argv[4].split(","), sys.argv[5]) if what == "build" else report(con, log, out)
    con.close()
    took = time.perf_counter() - started
    print(n, took, peak_rss_kb())
