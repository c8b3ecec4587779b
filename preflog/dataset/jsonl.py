"""A build's JSON lines, made by DuckDB (``to_json`` per row, no Python loop per row).

Each format is one SQL expression over a dataset row (:data:`LINES`): the
trainer's own fields first, then the row's provenance. The prompt is the same
text in every text format (:data:`PROMPT_TEXT`: the prompt messages' contents,
a system prompt included, joined by blank lines, or the prompt field); the
conversational formats keep the messages as they are.

OpenAI's preference format has rules (:data:`OPENAI_PROBLEM`, the SQL twin of
:func:`preflog.sinks.export.openai_problem`, which a test holds it to): a row
that breaks one is left out and counted by reason, never written broken, and
the provenance of each written row goes line for line into a file beside it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .derived import KTO_KEYS
from .messages import PLAIN, Shape, extra_columns, messages_sql, shape_of
from .openai import openai_fields, openai_problem_sql
from .select import ROW_KEYS

__all__ = ["COMPRESSIONS", "LINES", "OPENAI_PROBLEM", "PROMPT_TEXT", "write_lines"]

PROMPT_TEXT = (
    "CASE WHEN len(coalesce(prompt_messages, [])) > 0 "
    "THEN array_to_string(list_transform(prompt_messages, lambda m: m.content), chr(10) || chr(10)) "
    "ELSE prompt END"
)


#: the messages of a row as trainers take them, in a build of plain text messages (see :mod:`.messages`)
INPUT = messages_sql(Shape(), "prompt_messages")
PREFERRED = messages_sql(Shape(), "chosen_messages")
NON_PREFERRED = messages_sql(Shape(), "rejected_messages")

#: why a row breaks OpenAI's preference format, or NULL (the same rules, in the same order, as openai_problem)
OPENAI_PROBLEM = openai_problem_sql(Shape())

PAIR_PROVENANCE = (
    "pair_id", "request_id", "model", "model_version", "source", "kind", "margin", "chosen_score", "rejected_score",
    "votes", "weight",
)  # fmt: skip
_SIGNAL = ("request_id", "feedback_id", "model", "model_version", "source", "kind", "explicit")
Fields = tuple[tuple[str, str], ...]

#: format -> (the sort keys of its rows, its own fields as (key, SQL expression), its provenance columns)
LINES: dict[str, tuple[list[str], Fields, tuple[str, ...]]] = {
    "trl": (ROW_KEYS, (("prompt", PROMPT_TEXT), ("chosen", "chosen"), ("rejected", "rejected")), PAIR_PROVENANCE),
    "trl-conversational": (
        ROW_KEYS,
        (("prompt", INPUT), ("chosen", PREFERRED), ("rejected", NON_PREFERRED)),
        PAIR_PROVENANCE,
    ),
    "openai": (ROW_KEYS, openai_fields(Shape()), ()),  # its provenance goes beside it: OpenAI takes its own
    "nemo": (
        ROW_KEYS,
        (("prompt", PROMPT_TEXT), ("chosen_response", "chosen"), ("rejected_response", "rejected")),
        PAIR_PROVENANCE,
    ),
    "kto": (
        KTO_KEYS,
        (("prompt", PROMPT_TEXT), ("completion", "completion"), ("label", "label")),
        ("example_id", *_SIGNAL, "completion_model", "score"),
    ),
    "listwise": (
        ["feedback_id"],
        (
            ("prompt", PROMPT_TEXT),
            ("chosen", "chosen"),
            ("rejected", "rejected"),
            ("completions", "completions"),
            ("ranks", "ranks"),
            ("scores", "scores"),
        ),
        _SIGNAL,
    ),
    "ties": (
        ["tie_id"],
        (("prompt", PROMPT_TEXT), ("completion_a", "completion_a"), ("completion_b", "completion_b")),
        ("relation", "tie_id", *_SIGNAL),
    ),
}

#: NeMo-Aligner's optional rewards: keys written only when the condition holds (a null reward is no reward)
_NEMO_REWARDS: Fields = (("chosen_reward", "chosen_score"), ("rejected_reward", "rejected_score"))
_NEMO_HAS_REWARDS = "chosen_score IS NOT NULL AND rejected_score IS NOT NULL"


def _json(fields: Fields) -> str:
    """The SQL of one JSON object of ``fields``, as ``to_json`` of their struct writes it.

    Each value is written by ``to_json`` on its own and the object joined by one ``concat``: ``to_json`` of a
    struct of kilobyte texts took several copies of each (seen: over 184 MiB for 2,048 rows of 5 kB).
    """
    parts = []
    for i, (key, expr) in enumerate(fields):
        opening = "," if i else "{"
        parts.append(f"""'{opening}"{key}":', coalesce(to_json({expr})::VARCHAR, 'null')""")
    return f"concat({', '.join(parts)}, '}}')"  # one concat: a chain of || made a copy of the line at each step


def _own(fmt: str, shape: Shape) -> Fields:
    """The trainer's own fields of ``fmt`` for messages of ``shape`` (a rich build's messages, tools and images)."""
    if not shape.rich or fmt not in ("trl-conversational", "openai"):
        return LINES[fmt][1]
    if fmt == "openai":
        return openai_fields(shape)
    own = tuple((key, messages_sql(shape, column)) for key, column in _CONVERSATION)
    return own + extra_columns(shape)


_CONVERSATION = (("prompt", "prompt_messages"), ("chosen", "chosen_messages"), ("rejected", "rejected_messages"))


def _line(fmt: str, shape: Shape = PLAIN) -> str:
    """The SQL of a row's JSON text in format ``fmt``: its own fields, then its provenance."""
    _, _, provenance = LINES[fmt]
    own = _own(fmt, shape)
    after = tuple((c, c) for c in provenance)
    if fmt == "nemo":
        with_rewards = _json(own + _NEMO_REWARDS + after)
        return f"CASE WHEN {_NEMO_HAS_REWARDS} THEN {with_rewards} ELSE {_json(own + after)} END"
    return _json(own + after)


#: how a build's JSON lines are compressed: the file suffix of each (``datasets.load_dataset`` reads both)
COMPRESSIONS = {"none": ".jsonl", "gzip": ".jsonl.gz"}


class _Lines:
    """One JSON-lines file written as batches of lines arrive (joined by Arrow, no Python string per line)."""

    def __init__(self, path: Path, compress: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        self.f = path.open("wb")
        # gzip at level 1 (level 9, Arrow's, wrote 9 MB/s; 1 writes about 70, 17% larger), without a time in its
        # header: the same lines give the same bytes however they are fed
        self.zip = zlib.compressobj(1, zlib.DEFLATED, 31) if compress == "gzip" else None

    def write(self, lines: pa.Array | pa.ChunkedArray) -> None:
        if len(lines) == 0:
            return
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk) == 0:
                continue
            text = chunk.cast(pa.large_string())
            whole = pa.LargeListArray.from_arrays(pa.array([0, len(text)], pa.int64()), text)
            self._out(pc.binary_join(whole, pa.scalar("\n", pa.large_string()))[0].as_buffer())
            self._out(b"\n")
            self.rows += len(chunk)

    def _out(self, data: bytes | pa.Buffer) -> None:
        self.f.write(self.zip.compress(data) if self.zip is not None else data)

    def close(self) -> None:
        if self.zip is not None:
            self.f.write(self.zip.flush())
        self.f.close()


#: ``batches(source, select, keys)``: the rows of ``SELECT {select} FROM {source} ORDER BY {keys}``, in parts
Batches = Callable[[str, str, list[str]], Iterator[pa.Table]]


def write_lines(
    rows: pa.Table | str,
    fmt: str,
    folder: Path,
    splits: tuple[str, ...],
    compress: str = "none",
    batches: Batches | None = None,
    shape: Shape | None = None,
) -> tuple[list[tuple[Path, int]], dict[str, int]]:
    """Write ``rows`` (with a ``split`` column) as ``folder/fmt/{split}.jsonl`` (``.jsonl.gz`` with gzip).

    ``rows`` is an Arrow table, or the name of a relation that ``batches`` reads sorted (a build's, in bounded
    memory): the lines are made and written part by part, never all at once. Returns the files written with
    their line counts, and the rows left out by reason.

    OpenAI rows that break its rules are left out (counted by reason) and each written row's provenance
    goes to ``openai/{split}.provenance.jsonl``. ``shape`` (:func:`preflog.dataset.messages.shape_of`) says how
    the messages are written: plain ``{role, content}`` by default, or, for a table, as the table holds them.
    """
    keys = LINES[fmt][0]
    con = None
    if batches is None:
        if isinstance(rows, str):
            raise TypeError("write_lines: give an Arrow table, or a relation's name with batches")
        from preflog.sinks.scan import connect

        con = connect()
        con.register("rows", rows)
        shape = shape_of(con, "rows") if shape is None and fmt in ("trl-conversational", "openai") else shape
    shape = shape or Shape()
    problem = openai_problem_sql(shape) if fmt == "openai" else "NULL"
    extra = f", {_json(tuple((c, c) for c in PAIR_PROVENANCE))} AS provenance" if fmt == "openai" else ""
    select = f"split, {problem} AS problem, {_line(fmt, shape)} AS line{extra}"
    if con is not None:
        parts: Iterable[pa.Table | pa.RecordBatch] = con.sql(
            f"SELECT {select} FROM rows ORDER BY {', '.join(keys)}"
        ).to_arrow_reader(8192)
    else:
        assert batches is not None  # a relation's name comes with batches (checked above)
        parts = batches(str(rows), select, keys)
    suffix = COMPRESSIONS[compress]
    files: dict[str, _Lines] = {}
    left_out: dict[str, int] = {}
    try:
        for batch in parts:
            broken = batch.filter(pc.is_valid(batch.column("problem")))
            for reason in broken.column("problem").to_pylist():
                left_out[reason] = left_out.get(reason, 0) + 1
            written = batch.filter(pc.is_null(batch.column("problem")))
            for split in splits:
                part = written.filter(pc.equal(written.column("split"), split))
                if part.num_rows == 0:
                    continue
                if split not in files:
                    files[split] = _Lines(folder / fmt / f"{split}{suffix}", compress)
                    if fmt == "openai":
                        beside = _Lines(folder / fmt / f"{split}.provenance{suffix}", compress)
                        files[f"{split}.provenance"] = beside
                files[split].write(part.column("line"))
                if fmt == "openai":
                    files[f"{split}.provenance"].write(part.column("provenance"))
    finally:
        for f in files.values():
            f.close()
        if con is not None:
            con.close()
    paths = [(files[k].path, files[k].rows) for s in splits for k in (s, f"{s}.provenance") if k in files]
    return paths, dict(sorted(left_out.items()))
