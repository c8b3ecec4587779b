"""What a build reads: the log's files per table, their selected rows, and (``--since``) a previous build's.

A full read keeps the first copy of each id in path order (:func:`preflog.sinks.read.dedupe`), then
selects. An incremental build must give the same rows, so every build keeps, besides its selected rows
(``state/{table}.parquet``), the id of every row it read with the path of the copy that won
(``state/{table}.ids.parquet``). Reading only the new files, an id already read wins where its first
path sorts first: a new copy that sorts before the old one replaces the old row (selected or not),
one that sorts after is dropped, as a full read would. Rows without an id (written before the tables
had ids) are always kept, as a full read keeps them.

Consent and retention (:mod:`preflog.dataset.consent`, purpose ``training``) then leave rows out, counted
by reason in ``Inputs.left_out``. An incremental build checks the previous build's rows again (a retention
runs out meanwhile) and adds its counts to the previous build's, counting a new copy of a row that build
left out once, as a full read would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from preflog.privacy.envelope import shape_sql
from preflog.privacy.erase import WITHDRAWN
from preflog.sinks.read import data_files
from preflog.sinks.scan import connect, located, log_view, parquet_source
from preflog.sinks.storage import Storage

from .consent import REASONS, Purpose, columns, count_left_out
from .hashing import file_size, sha256_file, source_entry
from .histories import resolve_view
from .select import IDS, Selection, selected

__all__ = ["CHOSEN", "STATE", "BuildError", "Inputs", "previous", "read_inputs"]

#: the folder of a build's selected rows and ids (read by the next ``--since`` build; not in the content hash)
STATE = "state"
#: the build database's table of each log table's selected rows (the record queries read these names)
CHOSEN = {"pairs": "pairs", "unpaired": "signals"}


class BuildError(Exception):
    """A build that cannot be made (its name is taken, the log is missing, ``--since`` cannot be its base)."""


class Inputs:
    """Per table: the files listed, and their manifest entries; the rest lives in the build's database.

    ``CHOSEN[table]`` is the view of the selected rows, ``{table}_ids`` the table of the winning (id, path) of
    every id read. ``left_out`` counts the rows of the log (pairs and signals) that the selection takes but
    consent or retention leave out, per key of :data:`preflog.dataset.consent.REASONS`.
    """

    def __init__(self) -> None:
        self.files: dict[str, list[str]] = {}
        self.sources: list[dict[str, Any]] = []
        self.left_out: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.sealed = False  # the log holds sealed fields: opened, rows with their subject (see read_inputs)
        self.history: dict[str, int] = {}  # rows left out because their conversation history does not resolve


def _files(storage: Storage, table: str, log_url: str) -> list[str]:
    try:
        return data_files(storage, table, log_url)
    except FileNotFoundError:
        if table == "pairs":
            raise BuildError(f"no pairs table under {log_url} (is this an audit log root?)") from None
        return []  # no signal logged yet


def _file_ids(con: Any, storage: Storage, table: str, paths: list[str]) -> str:
    """The query of (id, path) of every row of ``paths`` (relative), one column read per file."""
    if not paths:
        return "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS path WHERE FALSE"
    where = located(con, storage, paths)
    names = ", ".join(f"('{w.replace(chr(39), chr(39) * 2)}', '{p.replace(chr(39), chr(39) * 2)}')"
                      for w, p in zip(where, paths, strict=True))  # fmt: skip
    source = parquet_source(where, ", filename = true")
    return f"""SELECT CAST(s.{IDS[table]} AS VARCHAR) AS id, f.path FROM (SELECT {IDS[table]}, filename FROM {source}) s
               JOIN (VALUES {names}) f(filename, path) USING (filename)"""


def previous(root: Path, since: str, config: dict[str, Any], log_url: str) -> dict[str, Any]:
    """The manifest of build ``since``, checked to be a base for an incremental build of ``log_url`` with ``config``."""
    from .catalog import manifest  # catalog reads what build writes, and build imports this module

    try:
        m = manifest(root, since)
    except FileNotFoundError as exc:
        raise BuildError(str(exc)) from None
    if (root / since / WITHDRAWN).exists():
        raise BuildError(
            f"build {since!r} was withdrawn by an erasure (its data deleted: {root / since / WITHDRAWN}); "
            "build without --since"
        )
    if not any(f["path"].endswith(".ids.parquet") for f in m["files"]):
        raise BuildError(f"build {since!r} has no read ids ({STATE}/) to start from: build without --since")
    if m["log"] != log_url:
        raise BuildError(f"build {since!r} read the log at {m['log']}, not {log_url}: build without --since")
    ours = json.loads(json.dumps(config))
    changed = sorted(k for k in ours.keys() | m["selection"].keys() if ours.get(k) != m["selection"].get(k))
    if changed:
        raise BuildError(
            f"--since {since}: its selection differs in {', '.join(changed)}; an incremental build keeps the "
            "selection (build without --since to change it)"
        )
    for f in m["files"]:
        if f["path"].startswith(f"{STATE}/") and sha256_file(root / since / f["path"]) != f["sha256"]:
            raise BuildError(f"build {since!r}: {f['path']} is not what its manifest says; run preflog dataset verify")
    return m


def read_inputs(
    con: Any,
    log_url: str,
    root: Path,
    selection: Selection,
    config: dict[str, Any],
    since: str | None,
    purpose: Purpose,
    keyring: Any = None,
) -> Inputs:
    """Read the log (only the files ``since`` had not read, when given) into the build database's tables.

    ``purpose`` says which rows consent and retention leave out (:attr:`Inputs.left_out` counts them).
    ``keyring`` (:class:`preflog.privacy.keyring.Keyring`) opens a sealed log's personal fields; its erased
    rows are left out too. Without one, a sealed log is refused (:class:`SealedLogError`). Whether the log
    is sealed is read from its files (and the previous build's), so a plain log builds the same either way.
    """
    storage = Storage(log_url)
    base = previous(root, since, config, log_url) if since else None
    known = {s["path"]: s for s in base["sources"]} if base else {}
    out = Inputs()
    if base is not None:  # what the previous build left out (a build before consent existed left nothing out)
        out.left_out = {r: int(base.get("privacy", {}).get(r, 0)) for r in REASONS}
        out.history = dict(base.get("left_out", {}).get("history", {}))
    new: dict[str, list[str]] = {}
    for table in IDS:
        listed = _files(storage, table, log_url)
        here = set(listed)
        for path, old in known.items():
            if not path.startswith(f"{table}/"):
                continue
            if path not in here or file_size(storage, path) != old.get("size", -1):
                raise BuildError(
                    f"{path}, read by build {since!r}, is gone from the log or changed; a full build would differ "
                    "from an incremental one: build without --since"
                )
        new[table] = [p for p in listed if p not in known]
        out.sources += [known[p] if p in known else source_entry(storage, p) for p in listed]
        out.files[table] = listed
    # the turns that conversation histories are resolved from are sources too: verify and diff see them change
    out.sources += [known[p] if p in known else source_entry(storage, p) for p in _files(storage, "turns", log_url)]
    state = root / str(since) / STATE if base is not None else None
    # sealed or not is the log's: a plain log builds the same with privacy on or off
    out.sealed = _base_sealed(state) or any(_sealed(log_url, table, new[table]) for table in IDS)
    if out.sealed and keyring is None:
        raise SealedLogError(
            "the log holds sealed personal fields: give the build its privacy settings (PREFLOG_PRIVACY__ENABLED=true, "
            "PREFLOG_PRIVACY__MASTER_KEY_FILE and the keys topic or directory the producers used) so it opens them"
        )
    for table in IDS:
        log_view(con, f"new_{table}", log_url, table, files=new[table], rid=1, keyring=keyring if out.sealed else None)
        ring = keyring if out.sealed else None
        resolved = resolve_view(con, f"new_{table}", log_url, table, selection, ring, purpose=purpose)
        out.history = {r: out.history.get(r, 0) + resolved.get(r, 0) for r in sorted(out.history.keys() | resolved)}
        con.execute(f"CREATE TABLE new_{table}_ids AS {_file_ids(con, storage, table, new[table])}")
        left_out = _merge(con, table, selection, state, purpose, out.sealed)
        out.left_out = {r: out.left_out[r] + left_out[r] for r in REASONS}
    return out


def _base_sealed(state: Path | None) -> bool:
    """Whether the previous build (its ``state``) was of a sealed log: its rows carry their subject."""
    if state is None:
        return False
    import pyarrow.parquet as pq

    return "subject" in pq.read_schema(state / "pairs.parquet").names


class SealedLogError(BuildError):
    """The log holds sealed personal fields and the build was given no keyring to open them."""


_SEALED = {
    "pairs": "inference_metadata['preflog.key'] IS NOT NULL",
    "unpaired": shape_sql("prompt"),
}


def _sealed(log_url: str, table: str, files: list[str]) -> bool:
    """Whether ``files`` of ``table`` hold sealed personal fields."""
    check = connect(256 * 10**6)
    try:
        log_view(check, "log", log_url, table, files=files)
        return check.execute(f"SELECT 1 FROM log WHERE {_SEALED[table]} LIMIT 1").fetchone() is not None
    finally:
        check.close()


def _merge(con: Any, table: str, s: Selection, state: Path | None, purpose: Purpose, sealed: bool) -> dict[str, int]:
    """The selected rows and winning ids of everything read: the new files' and, if any, a previous build's.

    The selected rows are a view (the log's files are read again by each query that needs the texts: the
    texts are never copied into the build's database, but a sealed log's, opened once: :func:`_chosen`);
    the ids a table (narrow). The previous build's rows
    have ``__rid`` their row number in its state, the new files' ``(1 + i) << 32 | row``. Rows ``purpose``
    leaves out are not in the view; returned: how many, by reason (beyond those the previous build counted).
    """
    key = IDS[table]
    new_ids = f"new_{table}_ids"
    ids = new_ids
    if state is not None:
        ids = f"(SELECT id, path FROM {_parquet(state / f'{table}.ids.parquet')} UNION ALL SELECT * FROM {new_ids})"
    con.execute(f"CREATE TABLE {table}_ids AS SELECT id, min(path) AS path FROM {ids} WHERE id <> '' GROUP BY id")
    fresh, args = selected(f"new_{table}", s, table, sealed)
    reason = purpose.reason(erased="erased" if sealed else "false")
    if state is None:
        left_out = count_left_out(con, f"SELECT {reason} AS reason FROM ({fresh})", args)
        kept = _inline(fresh, args)
        if any(left_out.values()):  # else no filter: a log without privacy facts builds as it did before them
            kept = f"SELECT * FROM ({kept}) WHERE ({reason}) IS NULL"
        _chosen(con, table, kept, sealed)
        return left_out
    won = f"SELECT DISTINCT w.id FROM {table}_ids w JOIN {new_ids} n USING (id, path)"
    con.execute(f"CREATE TABLE {table}_won AS {won}")
    old = f"read_parquet('{_quote(state / f'{table}.parquet')}', file_row_number = true)"
    have = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {old}").fetchall()}
    missing = "".join(f", {v} AS {column}" for column, v in columns(sealed).items() if column not in have)
    earlier = f"""SELECT * EXCLUDE (file_row_number), file_row_number AS __rid{missing} FROM {old}
                  WHERE coalesce({key}, '') = '' OR {key} NOT IN (SELECT id FROM {table}_won)"""
    later = f"SELECT * FROM ({fresh}) WHERE coalesce({key}, '') = '' OR {key} IN (SELECT id FROM {table}_won)"
    # a new copy of a row the previous build read but did not select: that build counted it if it was left out
    counted = f"""{key} IN (SELECT id FROM {_parquet(state / f"{table}.ids.parquet")})
                  AND {key} NOT IN (SELECT {key} FROM {old} WHERE coalesce({key}, '') <> '')"""
    again = count_left_out(con, f"SELECT {reason} AS reason FROM ({earlier})")  # retentions run out meanwhile
    added = count_left_out(con, f"SELECT {reason} AS reason FROM ({later}) WHERE NOT coalesce({counted}, FALSE)", args)
    query = f"{earlier} UNION ALL BY NAME {later}"
    if any(count_left_out(con, f"SELECT {reason} AS reason FROM ({query})", args).values()):
        query = f"SELECT * FROM ({query}) WHERE ({reason}) IS NULL"
    _chosen(con, table, _inline(query, args), sealed)
    return {r: again[r] + added[r] for r in REASONS}


def _chosen(con: Any, table: str, query: str, sealed: bool) -> None:
    """The relation ``CHOSEN[table]`` of ``query``: a view, or for a sealed log a table of the opened rows.

    A build reads the selected rows several times (cleaning, each output, its state); over a keyring's view
    each read would open every value again, so a sealed log's rows are opened once, into the build's
    database on disk (a temporary copy of the selected texts, removed with the build's work folder).
    """
    if sealed:
        con.execute(f"CREATE TABLE {table}_opened AS {query}")
        query = f"SELECT * FROM {table}_opened"
    con.execute(f"CREATE TEMP VIEW {CHOSEN[table]} AS {query}")


def _quote(text: object) -> str:
    return str(text).replace("'", "''")


def _parquet(path: Path) -> str:
    return f"read_parquet('{_quote(path)}')"


def _inline(query: str, args: list[Any]) -> str:
    """``query`` with its ``?`` arguments written in (a view takes no parameters); they are texts, numbers, booleans."""
    parts = query.split("?")
    if len(parts) != len(args) + 1:
        raise ValueError("a query's placeholders and arguments differ in number")
    out = [parts[0]]
    for value, part in zip(args, parts[1:], strict=True):
        if isinstance(value, bool):
            literal = "TRUE" if value else "FALSE"
        elif isinstance(value, int | float):
            literal = repr(value)
        else:
            literal = f"'{_quote(value)}'"
        out += [literal, part]
    return "".join(out)
