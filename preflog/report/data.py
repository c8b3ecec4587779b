"""The report's inputs: the audit log's tables as narrow DuckDB tables, selected like a dataset build.

``pairs`` has one row per preference pair with flat columns: the model (``name@version``) of
the request and of each side, the source type and id, the kind, both texts' lengths and
indices, times and the join latency. ``signals`` (ratings and implicit signals), ``unmatched``
and ``dead_letters`` back the coverage and health figures; ``judgements`` is every judgement
(a feedback id of pairs or signals) once.

Memory stays bounded: each table of the log is scanned once from its Parquet files
(:func:`preflog.sinks.scan.log_view`: DuckDB's reader, the texts read only for their lengths),
into a DuckDB database in a temporary folder (compressed on disk, cached within DuckDB's share of
``memory_limit``), and every figure is an aggregate query over it, spilling to that folder beyond it.

Pairs and signals hold only the rows the report may read (:mod:`.privacy`): consent to analytics, a retention
not run out, a subject not erased; a sealed log is read opened (the lengths are the texts', never their
ciphertext's).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from preflog.dataset.select import Selection, date_filter, judgement_filter
from preflog.sinks.scan import connect, log_view
from preflog.sinks.scan import memory_limit as size_of

from .privacy import REASONS, Privacy, SealedLogError

__all__ = ["FILTERS", "PYTHON_SHARE", "Inputs", "duckdb_share", "load", "narrowed"]

#: the selection fields a report takes (dates, and the judgement-level filters of a dataset build)
FILTERS = ("start", "end", "models", "model_versions", "sources", "kinds", "tenants", "explicit", "subjects")


def narrowed(s: Selection) -> bool:
    """Whether ``s`` filters by more than dates (the unmatched and dead-letter tables are filtered by date only)."""
    return any(getattr(s, k) not in (None, ()) for k in FILTERS if k not in ("start", "end"))


_MODEL = "{m}.name || '@' || coalesce({m}.version, '-')"
_PAIRS = f"""
    SELECT pair_id, request_id, feedback_id, CAST(feedback_kind AS VARCHAR) AS kind,
           CAST(source.type AS VARCHAR) AS source, coalesce(source.id, '-') AS source_id,
           coalesce(source.version, '-') AS source_version, explicit,
           {_MODEL.format(m="model")} AS model_id,
           {_MODEL.format(m="coalesce(chosen_model, model)")} AS chosen_id,
           {_MODEL.format(m="coalesce(rejected_model, model)")} AS rejected_id,
           chosen_index, rejected_index, length(chosen) AS chosen_len, length(rejected) AS rejected_len,
           margin, chosen_score, rejected_score, feedback_time, inference_time, join_latency_ms,
           context.tenant AS tenant, __subject AS subject, {{privacy}}
    FROM raw WHERE {{where}}
"""
_SIGNALS = f"""
    SELECT signal_id, request_id, feedback_id, CAST(feedback_kind AS VARCHAR) AS kind,
           CAST(source.type AS VARCHAR) AS source, explicit, label, {_MODEL.format(m="model")} AS model_id,
           feedback_time, inference_time, epoch_ms(feedback_time) - epoch_ms(inference_time) AS join_latency_ms,
           {{privacy}}
    FROM raw WHERE {{where}}
"""


#: the part of the report's memory limit left outside DuckDB's, at most half the limit: the interpreter and its
#: libraries (about 130 MiB), Arrow results and DuckDB's own allocations beyond its limit (the peak RSS of 10M
#: realistic pairs was DuckDB's limit + 243 MiB at 640 MiB, + 296 MiB at 768 MiB)
PYTHON_SHARE = 384 * 2**20


def duckdb_share(limit: str | int | None) -> int:
    """The bytes DuckDB may use of the report's memory ``limit`` (:func:`preflog.sinks.scan.memory_limit`)."""
    total = size_of(limit)
    return total - min(PYTHON_SHARE, total // 2)


_JUDGEMENTS = """
    SELECT DISTINCT ON (feedback_id) * FROM (
        SELECT feedback_id, request_id, kind, source, feedback_time, join_latency_ms FROM pairs
        UNION ALL SELECT feedback_id, request_id, kind, source, feedback_time, join_latency_ms FROM signals
    ) ORDER BY feedback_id
"""


@dataclass
class Inputs:
    """A DuckDB connection with the tables ``pairs``, ``signals``, ``unmatched``, ``dead_letters``, ``judgements``."""

    con: Any  # duckdb.DuckDBPyConnection
    selection: Selection
    folder: Path | None = field(default=None)  # the temporary database's folder, removed by close()
    privacy: Privacy = field(default_factory=Privacy.of)  # what consent, retention and erasure left out

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of ``query`` as tuples (for aggregates: a few rows, never one per pair)."""
        result: list[tuple[Any, ...]] = self.con.execute(query, list(args)).fetchall()
        return result

    def table(self, query: str, *args: Any) -> pa.Table:
        """The result of ``query`` as an Arrow table (for aggregates: a few rows, never one per pair)."""
        result = self.con.sql(query, params=list(args)).to_arrow_table()
        return result if isinstance(result, pa.Table) else result.read_all()

    def batches(self, query: str, *args: Any, rows: int = 65_536) -> pa.RecordBatchReader:
        """The result of ``query`` as a stream of Arrow batches of ``rows`` rows (memory: one batch)."""
        reader: pa.RecordBatchReader = self.con.sql(query, params=list(args)).to_arrow_reader(rows)
        return reader

    def close(self) -> None:
        self.con.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def load(
    url: str,
    selection: Selection,
    storage_options: dict[str, Any] | None = None,
    memory_limit: str | int | None = None,
    privacy: Privacy | None = None,
) -> Inputs:
    """The audit log at ``url`` as the report's tables, with ``selection``'s judgement-level filters applied.

    ``memory_limit`` is the report's memory (:func:`preflog.sinks.scan.memory_limit`; default
    :data:`preflog.sinks.scan.DEFAULT_MEMORY`): DuckDB gets :func:`duckdb_share` of it and spills to a
    temporary folder beyond that, removed by :meth:`Inputs.close`.

    ``privacy`` (default: :meth:`.privacy.Privacy.of` with no settings, now) says which rows of pairs and
    signals consent, retention and erasure leave out (counted in its ``left_out``) and opens a sealed log.

    Raises:
        FileNotFoundError: the log has no pairs table.
        SealedLogError: the log is sealed and no keys open it (the message names the settings to give).
    """
    privacy = privacy if privacy is not None else Privacy.of()
    where, args = judgement_filter(selection, "__subject")  # a row's subject: see _raw
    unmatched, unmatched_args = date_filter(selection, "event_time")
    dead, dead_args = date_filter(selection, "failed_at")
    views = (  # (table, table of the log, query over it as "raw", its arguments)
        ("pairs", "pairs", _PAIRS.format(where=where, privacy=_PRIVATE), args),
        ("signals", "unpaired", _SIGNALS.format(where=where, privacy=_PRIVATE), args),
        ("unmatched", "unmatched", "SELECT CAST(reason AS VARCHAR) AS reason, record_type, request_id, feedback_id, "
         f"event_time FROM raw WHERE {unmatched}", unmatched_args),
        ("dead_letters", "dead_letter", "SELECT error_class, stage, source_offset.topic AS topic, failed_at "
         f"FROM raw WHERE {dead}", dead_args),
    )  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="preflog-report-"))
    con = None
    try:
        con = connect(memory_limit, spill=str(folder / "spill"), database=str(folder / "report.duckdb"))
        con.execute(f"SET memory_limit = '{duckdb_share(memory_limit)}B'")
        for name, table, query, query_args in views:
            try:
                log_view(con, "raw__log", url, table, storage_options=storage_options)
            except FileNotFoundError:
                if table == "pairs":
                    raise
                log_view(con, "raw__log", url, table, files=[], storage_options=storage_options)  # empty, of its schema
            if table in PRIVATE:
                _private(con, name, table, query, query_args, privacy)
            else:  # no text, no consent facts: read as they are
                con.execute("CREATE OR REPLACE TEMP VIEW raw AS SELECT * FROM raw__log")
                con.execute(f"CREATE TABLE {name} AS {query}", query_args)  # "raw" is replaced by the next table's
        con.execute(f"CREATE TABLE judgements AS {_JUDGEMENTS}")
    except BaseException:
        if con is not None:
            con.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Inputs(con, selection, folder, privacy)


#: the log's tables whose rows are people's data: consent, retention and erasure leave rows out (:mod:`.privacy`)
PRIVATE = ("pairs", "unpaired")
_PRIVATE = "{reason} AS __reason, {sealed} AS __sealed"


def _private(con: Any, name: str, table: str, query: str, args: list[Any], privacy: Privacy) -> None:
    """The report's table ``name`` of the log's ``table`` (the view ``raw__log``): its rows ``privacy`` keeps.

    Read opened when ``privacy`` opens every table, or when the rows read as they are show a sealed value
    (then read again, opened). Counts what it leaves out in ``privacy.left_out[name]``.
    """
    import duckdb

    opened = privacy.opened or privacy.keyring is not None
    while True:
        _raw(con, table, privacy if opened else None)
        sealed = "false" if opened else Privacy.sealed(table)
        full = query.format(reason=privacy.reason(), sealed=sealed)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name}__all AS {full}", args)
        except duckdb.Error as exc:
            _keys_failed(exc)
            raise
        if opened or not con.execute(f"SELECT coalesce(bool_or(__sealed), false) FROM {name}__all").fetchall()[0][0]:
            break
        opened = True  # sealed values: read it again, opened (never a figure over ciphertext)
    counts = f"SELECT __reason, count(*) FROM {name}__all WHERE __reason IS NOT NULL GROUP BY ALL"
    counted = dict(con.execute(counts).fetchall())
    privacy.left_out[name] = {r: int(counted.get(r, 0)) for r in REASONS}
    con.execute(f"CREATE TABLE {name} AS SELECT * EXCLUDE (__reason, __sealed) FROM {name}__all WHERE __reason IS NULL")
    con.execute(f"DROP TABLE {name}__all")


#: a row's subject read as it is: the one its metadata states, else its user id (opened: its data key's, see _raw)
_SUBJECT = "coalesce(__stated_subject, context.user_id) AS __subject"


def _raw(con: Any, table: str, privacy: Privacy | None) -> None:
    """The view ``raw`` of ``raw__log`` with ``table``'s consent facts and ``erased``; opened with ``privacy``'s keys.

    The facts are read before the fields are opened (the ``preflog.*`` metadata values are never sealed), so no
    metadata value is opened for them.
    """
    source = f"SELECT *, {Privacy.facts(table)} FROM raw__log"
    if privacy is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw AS SELECT *, false AS erased, {_SUBJECT} FROM ({source})")
        return
    from preflog.privacy.views import opened_view

    schema = con.sql(f"SELECT * FROM ({source}) LIMIT 0").to_arrow_table().schema
    opened_view(con, "raw__opened", source, table, schema, privacy.keys())
    columns = {row[0] for row in con.execute("DESCRIBE raw__opened").fetchall()}
    # a keyring that knows the consent each data key records: a row stating none of its own takes its key's
    keys = " REPLACE (coalesce(__inference_consent, subject_consent) AS __inference_consent)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw AS SELECT *{keys if 'subject_consent' in columns else ''}, "
                "coalesce(subject, context.user_id) AS __subject FROM raw__opened")  # fmt: skip


def _keys_failed(exc: Exception) -> None:
    """Raise what a key the keyring could not use (raised within DuckDB's call of ``preflog_open``) says, if it was."""
    text = str(exc)
    for name in ("KeyError_: ", "SealError: "):
        if name in text:
            said = text.split(name, 1)[1].strip()
            raise SealedLogError(f"the audit log's sealed fields do not open: {said}") from None
