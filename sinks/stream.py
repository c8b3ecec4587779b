"""Pairs as they reach the audit log, for online training: ``preflog.stream_pairs`` (a building block of issue 22).

    stream = preflog.stream_pairs("file:///data/audit", resume=saved_token)
    for pair in stream:               # follows the log: new files are read as the sink writes them
        train_on(pair)
        saved_token = stream.token()  # store it with the model's state: a restart resumes after this pair

What is delivered, and when. The sink writes a *batch* of one partition's records as one file per
``dt=`` folder, all named by the batch's offsets (``{topic}+{partition}+{first}-{last}.parquet``) and
each recording in its Parquet metadata how many parts the batch has. A part counts once its manifest
is written (after its data; a stray copy of a file has none), and a batch is read once every part
counts, parts in folder order and rows in file order; one partition's batches in offset order (per
partition and topic incarnation: a *stream*). A batch left incomplete is held back until it completes,
unless complete batches cover its range (it was written again with other bounds). Overlapping complete
batches (a sink that lost its partition during a storage outage wrote a batch the next owner wrote again
with other bounds) are both read, the second's rows already delivered skipped by id (the ids of the last
few batches read, re-read from their files after a restart). A batch that starts past the next offset
is read only once a later listing shows the same gap: a listing is not a snapshot, and the batch in
between may have been written, into a folder already walked, while it ran. Empty batches (their
records were all duplicates) count by their manifests under ``_empty/``. Files written before batches
noted their parts are taken as whole batches: a stream must not follow a log an old sink still writes.

Exactly once. :meth:`PairStream.token` names, per stream, the highest offset read whole, the last
batches read and the row reached in the batch being read: a new stream given it resumes at the next
row. Files are immutable, so a token always means the same rows.
Memory holds one Parquet row group and the listing of the table's files.

Personal data. With ``purpose`` (default ``training``) a pair is left out, and counted in ``left_out`` by
reason, as a dataset build leaves it out: erased (its subject's data key was erased), no_consent (the
inference's consent, or the feedback's stated one, does not allow the purpose; an inference stating none
allows ``unstated_consent``), expired (past the inference's ``retention_days``). ``purpose=None`` yields
every pair. ``subjects`` (raw ids, pseudonyms or labels) keeps the pairs of those subjects only.

Conversations. With ``histories`` (the default) a turn given by reference has its whole history as
``prompt_messages``, from the ``turns`` table (each earlier turn must allow ``purpose``); one whose history
cannot be resolved (yet) is delivered with the messages it sent and ``history_problem`` saying why (None
on every other pair of a log of schema version 2). ``format`` (``trl``, ``trl-conversational``, ``openai``;
``kto``: unpaired) yields pairs as ``preflog export`` writes them; what a build leaves out (a history not
resolved, OpenAI's rules) is counted in ``left_out``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from preflog.privacy.subjects import labels
from preflog.schemas.tables import TABLES

from .batch import BATCH_KEY, EMPTY_DIR
from .manifest import MANIFEST_DIR
from .naming import parse_file_name
from .read import data_files
from .storage import Storage
from .stream_filters import check_format, select

__all__ = ["PairStream", "stream_pairs"]

Stream = tuple[str, int, int]  # topic, partition, incarnation
#: batches read whole whose ids a batch overlapping them is checked against (overlaps span a batch or two)
RECENT = 4


def _covered(batch: Any, cursor: int, complete: list[Any]) -> bool:
    """Whether ``complete`` batches hold every offset of ``batch`` past ``cursor``."""
    need = max(batch.first, cursor + 1)
    for b in sorted(complete, key=lambda b: b.first):
        if b.first <= need <= b.last:
            need = b.last + 1
    return need > batch.last


@dataclass
class _Batch:
    first: int
    last: int
    paths: list[str]
    parts: int | None = None  # from the first part's metadata; None until read


class PairStream:
    """An iterator over the pairs of an audit log as they arrive; see the module's docstring."""

    def __init__(
        self,
        url: str,
        table: str = "pairs",
        resume: str | None = None,
        follow: bool = True,
        poll_s: float = 2.0,
        batch_rows: int = 1024,
        models: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        keys: Any = "auto",
        maps_as_lists: bool = False,
        storage_options: dict[str, Any] | None = None,
        stop: threading.Event | None = None,
        purpose: str | None = "training",
        unstated_consent: Sequence[str] = ("training", "analytics"),
        subjects: Sequence[str] | None = None,
        histories: bool = True,
        format: str | None = None,
    ) -> None:
        check_format(format, table)
        self.format = format
        self.url, self.table, self.storage_options = url, table, storage_options
        self.storage = Storage(url, storage_options)
        self.subjects = None if subjects is None else labels(subjects)
        self.histories = histories
        self.follow, self.poll_s, self.batch_rows = follow, poll_s, batch_rows
        self.models, self.sources = list(models or ()), list(sources or ())
        self.keys, self.maps_as_lists = keys, maps_as_lists
        self.stop = stop or threading.Event()
        self.purpose, self.unstated = purpose, tuple(unstated_consent)
        self.left_out: Counter[str] = Counter()  # by reason: erased, no_consent, expired (as a build counts them)
        self._done: dict[Stream, int] = {}  # stream -> the highest offset of the batches read whole
        self._at: dict[Stream, tuple[int, int, int, int]] = {}  # stream -> (first, last, part, row) being read
        self._recent: dict[Stream, list[tuple[int, int]]] = {}  # stream -> the last RECENT batches read whole
        self._known_parts: dict[tuple[str, int, int, int, int], int] = {}  # (stream, first, last) -> parts
        self._gaps: dict[Stream, tuple[int, int]] = {}  # a gap seen once: read past it only if a new listing agrees
        if resume:
            self._load(resume)

    def _load(self, token: str) -> None:
        try:
            state = json.loads(token)
            assert state["v"] == 2
            for s in state["streams"]:
                stream = (str(s["topic"]), int(s["partition"]), int(s["incarnation"]))
                self._done[stream] = int(s["done"])
                self._recent[stream] = [(int(a), int(b)) for a, b in s["recent"]]
                if s.get("at") is not None:
                    first, last, part, row = s["at"]
                    self._at[stream] = (int(first), int(last), int(part), int(row))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(f"not a stream_pairs token ({type(exc).__name__}): pass what token() returned") from None

    def token(self) -> str:
        """Where this stream is: a new one made with ``resume=token`` goes on at the next pair.

        Call it from the thread that iterates (it reads the stream's position without a lock).
        """
        streams = [
            {"topic": t, "partition": p, "incarnation": i, "done": self._done.get((t, p, i), -1),
             "recent": self._recent.get((t, p, i), []),
             "at": list(self._at[(t, p, i)]) if (t, p, i) in self._at else None}
            for t, p, i in sorted(set(self._done) | set(self._at))
        ]  # fmt: skip
        return json.dumps({"v": 2, "streams": streams}, separators=(",", ":"))

    def _listing(self) -> dict[Stream, dict[tuple[int, int], _Batch]]:
        try:
            paths = data_files(self.storage, self.table, self.url)
        except FileNotFoundError:
            return {}
        # a part counts once its manifest is written (after its data): a stray copy of a file has none; a batch
        # whose records were all duplicates has only a manifest under _empty/ (it covers its range, no rows)
        noted = [
            p.removeprefix(f"{MANIFEST_DIR}/").removesuffix(".json")
            for p in self.storage.list(f"{MANIFEST_DIR}/{self.table}")
        ]
        empty = [p for p in noted if p.startswith(f"{self.table}/{EMPTY_DIR}/")]
        have = set(noted)
        streams: dict[Stream, dict[tuple[int, int], _Batch]] = {}
        for path in [p for p in paths if p in have] + empty:
            name = parse_file_name(path)
            if name is None:
                continue
            batches = streams.setdefault((name.topic, name.partition, name.incarnation), {})
            batch = batches.setdefault((name.first, name.last), _Batch(name.first, name.last, []))
            if path in empty:
                batch.parts = max(batch.parts or 0, 0)
            else:
                batch.paths.append(path)
        return streams

    def _parts(self, stream: Stream, batch: _Batch) -> int:
        """How many parts ``batch`` has (0: an empty batch), read once from a part's Parquet metadata."""
        if batch.parts is not None and not batch.paths:
            return batch.parts
        key = (*stream, batch.first, batch.last)
        if key not in self._known_parts:
            metadata = pq.read_schema(self.storage.path(batch.paths[0]), filesystem=self.storage.fs).metadata or {}
            about = metadata.get(BATCH_KEY)
            self._known_parts[key] = int(json.loads(about)["parts"]) if about else 1  # files from before batches
            if len(self._known_parts) > 100_000:
                self._known_parts.pop(next(iter(self._known_parts)))
        return self._known_parts[key]

    def _ready(self, stream: Stream, batches: dict[tuple[int, int], _Batch]) -> tuple[list[_Batch], bool]:
        """The stream's batches to read now, in offset order, and whether a gap asks for another listing.

        A batch is read when complete and past what was read; one that overlaps what was read (a writer that
        lost its partition wrote a batch the next owner wrote again with other bounds) is read too, its rows
        already delivered skipped by id. An incomplete batch holds the rest back unless complete batches cover
        it. A batch starting past the next offset is read only once a later listing shows the same gap (a
        listing is not a snapshot: the batch between may have been written while it ran).
        """
        done = self._done.get(stream, -1)
        complete = [b for b in batches.values() if b.last > done and len(b.paths) >= self._parts(stream, b)]
        out: list[_Batch] = []
        at = self._at.get(stream)
        if at is not None and (at[0], at[1]) in batches and batches[(at[0], at[1])] in complete:
            out.append(batches[(at[0], at[1])])  # the batch being read first: its rows are fixed
        cursor = max([done] + [b.last for b in out])
        for b in sorted((b for b in batches.values() if b.last > cursor), key=lambda b: (b.first, b.last)):
            if b.last <= cursor:
                continue
            if b not in complete:
                if _covered(b, cursor, complete):
                    continue  # superseded: the complete batches hold its range
                break  # a sink may still be writing it
            if b.first > cursor + 1 and self._gaps.get(stream) != (cursor, b.first):
                self._gaps[stream] = (cursor, b.first)
                return out, True
            out.append(b)
            cursor = b.last
        return out, False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        relist = False
        while not self.stop.is_set():
            listing = self._listing()
            delivered = relist = False
            for stream in sorted(listing):
                ready, gap = self._ready(stream, listing[stream])
                relist = relist or gap
                for batch in ready:
                    for row in self._rows(stream, batch, listing[stream]):
                        delivered = True
                        yield row
                    if self.stop.is_set():
                        return
            if relist:
                continue  # a gap: list again before reading past it
            if not self.follow and not delivered:
                return
            if not delivered:
                self.stop.wait(self.poll_s)

    def _seen(self, stream: Stream, batch: _Batch, batches: dict[tuple[int, int], _Batch]) -> set[str]:
        """Ids already delivered that ``batch`` may hold again: those of the recent batches it overlaps."""
        id_column = TABLES[self.table].id_column
        ids: set[str] = set()
        for first, last in self._recent.get(stream, []):
            other = batches.get((first, last))
            if other is None or not (first <= batch.last and batch.first <= last) or other is batch:
                continue
            for path in other.paths:
                table = pq.read_table(self.storage.path(path), columns=[id_column], filesystem=self.storage.fs)
                ids.update(table.column(id_column).to_pylist())
        return ids

    def _rows(self, stream: Stream, batch: _Batch, batches: dict[tuple[int, int], _Batch]) -> Iterator[dict[str, Any]]:
        at = self._at.get(stream)
        part0, row0 = (at[2], at[3]) if at is not None and (at[0], at[1]) == (batch.first, batch.last) else (0, 0)
        seen = self._seen(stream, batch, batches) if batch.first <= self._done.get(stream, -1) else set()
        for part, path in enumerate(sorted(batch.paths)):
            if part < part0:
                continue
            skip = row0 if part == part0 else 0
            row = 0
            with self.storage.fs.open(self.storage.path(path), "rb") as f:
                for records in pq.ParquetFile(f).iter_batches(batch_size=self.batch_rows):
                    start, row = row, row + records.num_rows
                    if row <= skip:
                        continue
                    table = pa.Table.from_batches([records]).slice(max(0, skip - start))
                    numbered = zip(range(start + max(0, skip - start), row), self._select(table), strict=False)
                    for n, (row_id, pair) in numbered:
                        self._at[stream] = (batch.first, batch.last, part, n + 1)
                        if pair is not None and row_id not in seen:
                            yield pair
                    if self.stop.is_set():
                        return
        self._done[stream] = max(self._done.get(stream, -1), batch.last)
        self._recent[stream] = [*self._recent.get(stream, []), (batch.first, batch.last)][-RECENT:]
        self._at.pop(stream, None)

    def _select(self, table: pa.Table) -> Iterator[tuple[Any, dict[str, Any] | None]]:
        return select(self, table)

    def as_dataset(self) -> Any:
        """This stream as a Hugging Face ``datasets.IterableDataset`` (maps as lists; not resumable by HF)."""
        from datasets import IterableDataset

        self.maps_as_lists = True
        return IterableDataset.from_generator(self.__iter__)


def stream_pairs(url: str, **options: Any) -> PairStream:
    """Pairs as they reach the audit log at ``url``; see :class:`PairStream` for ``options``."""
    return PairStream(url, **options)
