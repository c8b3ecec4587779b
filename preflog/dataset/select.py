"""From audit-log pairs to dataset rows: selection, exact duplicates merged, contradictions resolved, splits.

Two DuckDB queries over the build's tables (no Python loop per row, memory bounded by DuckDB's limit):

* :func:`selected` applies the judgement-level selection (dates of the
  feedback, model names, source types, feedback kinds, explicit or implicit,
  tenants), the same for every pair of one judgement, and keeps the columns a
  build needs. Its result is what an incremental build (``--since``) stores:
  the previous build's selected rows plus the selected rows of the new files
  are the selected rows of the whole log.
* :func:`preflog.dataset.dedup.dataset_rows` cleans them:

* **pair-level selection**: a minimum margin, a minimum score of the chosen answer;
* **duplicates**: pairs with the same prompt, chosen and rejected are one
  row; ``votes`` counts them and the row keeps the smallest pair_id's fields
  (texts compared by their md5, so the grouping runs on narrow rows; images, tool
  calls and tools too where a pair has them: :mod:`preflog.dataset.dedup`);
* **contradictions** (A over B and B over A for one prompt), by ``policy``:
  ``majority`` keeps the side with more votes (a tie drops both), ``drop``
  drops both, ``keep`` keeps both with ``weight`` = votes / all votes of the two
  (the manifest counts the pairs dropped, ``contradictions_dropped``);
* **caps**: at most N rows per model, model version, source, kind, tenant or
  user (``caps``), a seeded hash of the pair_id choosing which, so a few heavy
  users cannot dominate and the same seed picks the same rows;
* **splits** by a hash of the normalised prompt (lower case, runs of white
  space as one space) and the seed: a prompt never straddles two splits, and a
  pair keeps its split when the dataset is rebuilt with more data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .consent import columns, privacy_columns
from .subjects import check_subjects, log_subject_sql, subject_filter

__all__ = [
    "CAP_COLUMNS",
    "POLICIES",
    "PROMPT_KEY",
    "Selection",
    "dataset_view",
    "date_filter",
    "judgement_filter",
    "near_duplicate_prompts",
    "pair_where",
    "selected",
    "sort_keys",
    "split_of",
]

Policy = Literal["majority", "drop", "keep"]
POLICIES: tuple[str, ...] = ("majority", "drop", "keep")
#: a prompt's normalised text, the key of splits, duplicates and decontamination (lower case, one space)
PROMPT_KEY = (  # the regular expression only where it changes something (it reads about 20 MB/s, contains 1 GB/s)
    "lower(CASE WHEN contains(prompt, '  ') OR contains(prompt, chr(9)) OR contains(prompt, chr(10)) "
    "OR contains(prompt, chr(12)) OR contains(prompt, chr(13)) "
    "THEN regexp_replace(trim(prompt), '\\s+', ' ', 'g') ELSE trim(prompt) END)"
)
#: the columns a build can cap rows per value of
CAP_COLUMNS: tuple[str, ...] = ("model", "model_version", "source", "kind", "tenant", "user_id")


@dataclass(frozen=True)
class Selection:
    """What a build takes from the log and how it cleans and splits it (all of it goes into the manifest)."""

    start: str | None = None
    end: str | None = None
    models: tuple[str, ...] = ()
    model_versions: tuple[str, ...] = ()  # the serving model's version
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    explicit: bool | None = None
    tenants: tuple[str, ...] = ()
    min_margin: float | None = None
    min_score: float | None = None  # the chosen answer's score (SCORES feedback) at least this
    contradictions: Policy = "majority"
    test_fraction: float = 0.1
    validation_fraction: float = 0.0
    seed: int = 0
    caps: tuple[tuple[str, int], ...] = ()
    decontaminate: str | None = None  # an evaluation file: pairs whose prompt overlaps it are dropped
    ngram: int = 13  # the n-gram length of that overlap in words (0: exact matches only)
    kto_desirable: float | None = None  # a scored answer at or above this is a desirable KTO example
    kto_undesirable: float | None = None  # a scored answer at or below this is an undesirable one
    kto_implicit: bool = False  # take implicit signals (clicks, copies) as KTO labels too
    extra: dict[str, Any] = field(default_factory=dict)
    subjects: tuple[str, ...] = ()  # only these people: labels (pseudonyms, sub_...), see preflog.privacy.subjects
    per_subject: bool = False  # a shard per subject; duplicates and contradictions resolved within each subject
    min_per_subject: int = 1  # the least rows a subject needs for a shard of its own

    def __post_init__(self) -> None:
        for column, n in self.caps:
            if column not in CAP_COLUMNS or n < 1:
                raise ValueError(f"cap {column}={n}: cap one of {', '.join(CAP_COLUMNS)} to at least 1 row")
        if self.contradictions not in POLICIES:
            raise ValueError(f"contradictions={self.contradictions!r}: choose one of {', '.join(POLICIES)}")
        both = self.kto_desirable is not None and self.kto_undesirable is not None
        if both and self.kto_desirable <= self.kto_undesirable:  # type: ignore[operator]
            raise ValueError("--kto-desirable must be above --kto-undesirable (a score cannot be both)")
        fractions = (self.test_fraction, self.validation_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise ValueError("test and validation fractions must be >= 0 and leave some rows for train")
        check_subjects(self)


def date_filter(s: Selection, column: str = "feedback_time") -> tuple[str, list[Any]]:
    """The SQL condition (and its arguments) of the selection's dates, inclusive, on timestamp ``column``."""
    parts: list[str] = ["TRUE"]
    args: list[Any] = []
    if s.start:
        parts.append(f"CAST({column} AS DATE) >= CAST(? AS DATE)")
        args.append(s.start)
    if s.end:
        parts.append(f"CAST({column} AS DATE) <= CAST(? AS DATE)")
        args.append(s.end)
    return " AND ".join(parts), args


def judgement_filter(s: Selection, subject: str | None = None) -> tuple[str, list[Any]]:
    """The judgement-level selection, the same for every pair of one judgement (``subject``: a row's, in SQL)."""
    where, args = date_filter(s)
    parts = [where, *subject_filter(s, subject, args)]
    filters = (
        ("model.name", s.models),
        ("model.version", s.model_versions),
        ("CAST(source.type AS VARCHAR)", [v.upper() for v in s.sources]),
        ("CAST(feedback_kind AS VARCHAR)", [v.upper() for v in s.kinds]),
        ("context.tenant", s.tenants),
    )
    for column, values in filters:
        if values:
            parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
            args += list(values)
    if s.explicit is not None:
        parts.append("explicit = ?")
        args.append(s.explicit)
    return " AND ".join(parts), args


def pair_where(s: Selection) -> tuple[str, list[Any]]:
    """The pair-level selection (a ranking's or a score list's pairs can differ in it)."""
    parts: list[str] = ["TRUE"]
    args: list[Any] = []
    if s.min_margin is not None:
        parts.append("margin >= ?")
        args.append(s.min_margin)
    if s.min_score is not None:
        parts.append("chosen_score >= ?")
        args.append(s.min_score)
    return " AND ".join(parts), args


def split_of(s: Selection, key: str = "prompt_key") -> str:
    """The SQL expression of a row's split from its normalised prompt ``key`` and the seed."""
    u = f"CAST(('0x' || substr(md5('{int(s.seed)}:' || {key}), 1, 12)) AS UBIGINT) / 281474976710656.0"
    test_end = float(s.test_fraction)
    validation_end = float(s.test_fraction + s.validation_fraction)
    return f"CASE WHEN {u} < {test_end} THEN 'test' WHEN {u} < {validation_end} THEN 'validation' ELSE 'train' END"


#: the columns of a dataset row, from the representative pair of each merged group, and the privacy columns
#: (:data:`preflog.dataset.consent.COLUMNS`)
_KEEP = """
    prompt, chosen, rejected, prompt_messages, chosen_messages, rejected_messages, tools,
    pair_id, request_id, feedback_id, chosen_index, rejected_index, model.name AS model, model.version AS model_version,
    chosen_model.name AS chosen_model, rejected_model.name AS rejected_model,
    CAST(source.type AS VARCHAR) AS source, source.id AS source_id, source.version AS source_version,
    CAST(feedback_kind AS VARCHAR) AS kind, explicit, margin, chosen_score, rejected_score,
    CAST(feedback_time AS VARCHAR) AS feedback_time, context.tenant AS tenant, context.user_id AS user_id,
    {privacy}
"""
#: the columns of a selected signal (the unpaired table: ratings and implicit signals; it has no metadata maps)
_KEEP_SIGNAL = """
    prompt, prompt_messages, completion, completion_messages, completion_index, label, value, signal,
    signal_id, request_id, feedback_id, model.name AS model, model.version AS model_version,
    coalesce(completion_model.name, model.name) AS completion_model,
    CAST(source.type AS VARCHAR) AS source, source.id AS source_id, source.version AS source_version,
    CAST(feedback_kind AS VARCHAR) AS kind, explicit,
    CAST(feedback_time AS VARCHAR) AS feedback_time, context.tenant AS tenant, context.user_id AS user_id,
    {privacy}
"""
#: the id column of each table a build reads
IDS = {"pairs": "pair_id", "unpaired": "signal_id"}
#: the order of a table's selected rows (ids first; rows without one by their content)
ORDER = {"pairs": "pair_id, feedback_id, prompt, chosen, rejected", "unpaired": "signal_id, feedback_id, completion"}


def sort_keys(order: str, id_column: str) -> list[str]:
    """``order`` as sort keys that compare texts only where the id is blank (elsewhere it is unique)."""
    first, *rest = [k.strip() for k in order.split(",")]
    blank = f"coalesce({id_column}, '') = ''"
    return [first, *(k if k.endswith("_id") else f"CASE WHEN {blank} THEN {k} END" for k in rest)]


#: the sort keys of :data:`ORDER` (a build sorts with them: same order, texts carried only where needed)
ORDER_KEYS = {table: sort_keys(ORDER[table], IDS[table]) for table in IDS}


def selected(source: str, s: Selection, name: str = "pairs", sealed: bool = False) -> tuple[str, list[Any]]:
    """The query (and its arguments) of the rows of relation ``source`` that the judgement-level selection takes.

    ``source`` is a ``pairs`` or ``unpaired`` table of the log; a build stores them by :data:`ORDER_KEYS`.
    Each row keeps the columns a build needs, ``prompt_key`` (the normalised prompt), ``__rid`` and the privacy
    columns (:data:`preflog.dataset.consent.COLUMNS`; consent and retention are applied to these rows by
    :func:`preflog.dataset.inputs.read_inputs`), from a keyring's view when ``sealed``.
    """
    where, args = judgement_filter(s, log_subject_sql(name, sealed))
    if name == "pairs":
        keep = _KEEP.format(privacy=privacy_columns("inference_metadata", "feedback_metadata", sealed))
    else:
        keep = _KEEP_SIGNAL.format(privacy=privacy_columns(None, None, sealed))
    return f"SELECT {keep}, {PROMPT_KEY} AS prompt_key, __rid FROM {source} WHERE {where}", args


#: the order of a dataset's rows: by pair_id, and rows without one (written before the tables had ids) by their
#: texts, which are compared only there (a pair_id is unique unless blank), so a sort need not carry them
ROW_KEYS = sort_keys("pair_id, prompt, chosen, rejected", "pair_id")


def dataset_view(chosen: str, kept: str, subject: bool = False) -> str:
    """The query of the dataset rows: the ``kept`` rows (of :mod:`preflog.dataset.dedup`) with columns from ``chosen``.

    A build writes them ordered by :data:`ROW_KEYS`, with ``votes``, ``weight``, ``opposing_votes``, ``split``
    (and without the privacy columns, :data:`preflog.dataset.consent.COLUMNS`, but ``subject`` when asked: a
    sealed log's build carries every row's subject).
    """
    privacy = ", ".join(columns(subject))
    carried = ", c.subject" if subject else ""
    return f"""
        SELECT c.prompt, c.chosen, c.rejected, k.votes,
               c.* EXCLUDE (prompt, chosen, rejected, chosen_index, rejected_index, prompt_key, __rid, {privacy}),
               k.opposing_votes, k.weight, k.split{carried}
        FROM {chosen} c JOIN {kept} k ON c.__rid = k.rid  -- the narrow kept rows are the hash table (see build)
    """


def near_duplicate_prompts(con: Any, rows: str) -> int:
    """How many normalised prompts of relation ``rows`` are written in more than one way (case or white space)."""
    keys = f"""SELECT md5_number({PROMPT_KEY}) AS k FROM {rows} GROUP BY k
               HAVING count(DISTINCT md5_number(prompt)) > 1"""
    return int(con.execute(f"SELECT count(*) FROM ({keys})").fetchall()[0][0])
