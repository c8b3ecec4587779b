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
partition and topic incarnation: a *stream*). A batch left incomplete by a sink killed midway is
written again by the restarted sink, possibly with other bounds: the incomplete one is then
superseded (a complete batch overlaps it) and skipped, as its rows are in the new one. An incomplete
batch that nothing overlaps holds its stream back until it completes (a sink still writing it).

Exactly once. :meth:`PairStream.token` names, per stream, the last batch read whole and the row
reached in the batch being read: a new stream given that token resumes at the next row. Files are
immutable and batches of a stream never go back in offset, so a token always means the same rows.
Memory holds one Parquet row group and the listing of the table's files.

Personal data. With ``purpose`` (default ``training``) a pair is left out, and counted in ``left_out`` by
reason, as a dataset build leaves it out: erased (its subject's data key was erased), no_consent (the
inference's consent, or the feedback's stated one, does not allow the purpose; an inference stating none
allows ``unstated_consent``), expired (past the inference's ``retention_days``). ``purpose=None`` yields
every pair.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from preflog.privacy.fields import CONSENT, RETENTION, allows

from .batch import BATCH_KEY
from .manifest import MANIFEST_DIR
from .naming import parse_file_name
from .read import data_files, opened, without_maps
from .storage import Storage

__all__ = ["PairStream", "stream_pairs"]

Stream = tuple[str, int, int]  # topic, partition, incarnation


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
    ) -> None:
        self.url, self.table = url, table
        self.storage = Storage(url, storage_options)
        self.follow, self.poll_s, self.batch_rows = follow, poll_s, batch_rows
        self.models, self.sources = list(models or ()), list(sources or ())
        self.keys, self.maps_as_lists = keys, maps_as_lists
        self.stop = stop or threading.Event()
        self.purpose, self.unstated = purpose, tuple(unstated_consent)
        self.left_out: Counter[str] = Counter()  # by reason: erased, no_consent, expired (as a build counts them)
        self._done: dict[Stream, int] = {}  # stream -> last offset of the last batch read whole
        self._at: dict[Stream, tuple[int, int, int]] = {}  # stream -> (first of the batch being read, part, row)
        if resume:
            self._load(resume)

    def _load(self, token: str) -> None:
        try:
            state = json.loads(token)
            assert state["v"] == 1
            for s in state["streams"]:
                stream = (str(s["topic"]), int(s["partition"]), int(s["incarnation"]))
                self._done[stream] = int(s["done"])
                if s.get("at") is not None:
                    first, part, row = s["at"]
                    self._at[stream] = (int(first), int(part), int(row))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(f"not a stream_pairs token ({type(exc).__name__}): pass what token() returned") from None

    def token(self) -> str:
        """Where this stream is: a new one made with ``resume=token`` goes on at the next pair."""
        streams = [
            {"topic": t, "partition": p, "incarnation": i, "done": self._done.get((t, p, i), -1),
             "at": list(self._at[(t, p, i)]) if (t, p, i) in self._at else None}
            for t, p, i in sorted(set(self._done) | set(self._at))
        ]  # fmt: skip
        return json.dumps({"v": 1, "streams": streams}, separators=(",", ":"))

    def _listing(self) -> dict[Stream, dict[tuple[int, int], _Batch]]:
        try:
            paths = data_files(self.storage, self.table, self.url)
        except FileNotFoundError:
            return {}
        # a part counts once its manifest is written (after its data): a stray copy of a file has none
        noted = {
            p.removeprefix(f"{MANIFEST_DIR}/").removesuffix(".json")
            for p in self.storage.list(f"{MANIFEST_DIR}/{self.table}")
        }
        paths = [p for p in paths if p in noted]
        streams: dict[Stream, dict[tuple[int, int], _Batch]] = {}
        for path in paths:
            name = parse_file_name(path)
            assert name is not None  # data_files keeps preflog's names only
            batches = streams.setdefault((name.topic, name.partition, name.incarnation), {})
            batch = batches.setdefault((name.first, name.last), _Batch(name.first, name.last, []))
            batch.paths.append(path)
        return streams

    def _parts(self, batch: _Batch) -> int:
        if batch.parts is None:
            metadata = pq.read_schema(self.storage.path(batch.paths[0]), filesystem=self.storage.fs).metadata or {}
            about = metadata.get(BATCH_KEY)
            batch.parts = int(json.loads(about)["parts"]) if about else 1  # files from before batches were noted
        return batch.parts

    def _ready(self, stream: Stream, batches: dict[tuple[int, int], _Batch]) -> list[_Batch]:
        """The stream's batches to read now, in offset order: complete, after the last one read, not held back."""
        done = self._done.get(stream, -1)
        ordered = sorted((b for b in batches.values() if b.last > done), key=lambda b: (b.first, b.last))
        complete = [b for b in ordered if len(b.paths) >= self._parts(b)]
        out: list[_Batch] = []
        for b in ordered:
            if b in complete:
                if not out or b.first > out[-1].last:
                    out.append(b)
                continue
            if not any(c.first <= b.last and b.first <= c.last for c in complete):
                break  # incomplete and not superseded: a sink may still be writing it
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cache: dict[Stream, dict[tuple[int, int], _Batch]] = {}
        while not self.stop.is_set():
            listing = self._listing()
            for stream, batches in listing.items():  # keep what was read of the metadata, not what was read whole
                known = cache.setdefault(stream, {})
                done = self._done.get(stream, -1)
                for k, b in batches.items():
                    if b.last <= done:
                        known.pop(k, None)
                    elif k in known:
                        known[k].paths = b.paths
                    else:
                        known[k] = b
            delivered = False
            for stream in sorted(cache):
                for batch in self._ready(stream, cache[stream]):
                    for row in self._rows(stream, batch):
                        delivered = True
                        yield row
                    if self.stop.is_set():
                        return
            if not self.follow and not delivered:
                return
            if not delivered:
                self.stop.wait(self.poll_s)

    def _rows(self, stream: Stream, batch: _Batch) -> Iterator[dict[str, Any]]:
        first, part0, row0 = self._at.get(stream, (batch.first, 0, 0))
        if first != batch.first:
            part0, row0 = 0, 0
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
                    for n, pair in zip(range(start + max(0, skip - start), row), self._select(table), strict=False):
                        self._at[stream] = (batch.first, part, n + 1)
                        if pair is not None:
                            yield pair
                    if self.stop.is_set():
                        return
        self._done[stream] = batch.last
        self._at.pop(stream, None)

    def _select(self, table: pa.Table) -> Iterator[dict[str, Any] | None]:
        """Each row as a dict, or None where the filters leave it out (so positions still count it)."""
        keep = pa.array([True] * table.num_rows)
        if self.models:
            keep = pc.and_(keep, pc.is_in(table.column("model").combine_chunks().field("name"), pa.array(self.models)))
        if self.sources:
            source = table.column("feedback_source").combine_chunks().field("type")
            keep = pc.and_(keep, pc.is_in(source, pa.array(self.sources)))
        rows = opened(table, self.table, self.keys)
        if self.maps_as_lists:
            rows = without_maps(rows)
        for wanted, pair in zip(keep.to_pylist(), rows.to_pylist(), strict=True):
            reason = self._left_out(pair) if wanted and self.purpose else None
            if reason is not None:
                self.left_out[reason] += 1
            yield pair if wanted and reason is None else None

    def _left_out(self, pair: dict[str, Any]) -> str | None:
        """Why privacy leaves ``pair`` out of ``purpose`` (erased, no_consent, expired), as a build decides."""
        if pair.get("erased"):
            return "erased"
        inference, feedback = (_mapping(pair.get(k)) for k in ("inference_metadata", "feedback_metadata"))
        if not allows(inference, self.purpose or "", self.unstated) or (
            CONSENT in feedback and not allows(feedback, self.purpose or "", ())
        ):
            return "no_consent"
        days, when = inference.get(RETENTION), pair.get("inference_time")
        if days is not None and when is not None and when + timedelta(days=float(days)) < datetime.now(timezone.utc):
            return "expired"
        return None

    def as_dataset(self) -> Any:
        """This stream as a Hugging Face ``datasets.IterableDataset`` (maps as lists; not resumable by HF)."""
        from datasets import IterableDataset

        self.maps_as_lists = True
        return IterableDataset.from_generator(self.__iter__)


def _mapping(value: Any) -> dict[str, str]:
    """A metadata map as Arrow gives it to Python (a list of pairs) or as a dict."""
    if isinstance(value, dict):
        return value
    return dict(value or ())


def stream_pairs(url: str, **options: Any) -> PairStream:
    """Pairs as they reach the audit log at ``url``; see :class:`PairStream` for ``options``."""
    return PairStream(url, **options)
