"""The join: feedback matched to inference on request_id within an event-time window.

:class:`Joiner` is plain, synchronous Python over a mutable mapping (a Faust
Table in the worker, a dict in unit tests). Each call returns what to emit;
it never drops a record silently. Semantics:

* Either order: feedback that arrives first waits in state for its inference.
* Window: an inference is joinable by feedback whose event time is at most
  ``window`` after its own; it stays in state until stream time (the highest
  event time seen on the partition) passes ``event_time + window + grace``.
* Expiry: an inference without feedback is emitted as unmatched NO_FEEDBACK;
  waiting feedback whose inference never came as NO_INFERENCE. A marker of the
  expired inference stays for ``late_retention`` so that feedback arriving
  after expiry is emitted as unmatched LATE.
* Idempotence: a feedback_id is joined once; an identical duplicate inference
  is ignored, a conflicting one is dead-lettered.
* Idle: when a partition receives nothing for ``idle_timeout``, ``tick`` moves
  its stream time forward with the wall clock, so expiry still happens.
* Every record gets an outcome, whatever it contains: a record (or a stored
  one at expiry) on which the join itself fails is dead-lettered (JoinError,
  the exception in the reason), only a failing state store stops the worker;
  an input over
  ``max_input_bytes`` is dead-lettered and never stored (InputTooLarge); an
  event time more than ``max_event_time_skew`` ahead of its Kafka timestamp
  (and of the clock) is dead-lettered (EventTimeSkew) and never moves stream
  time; feedback that decides no pair is unmatched NO_PAIRS; every output is
  encoded here, and one that cannot be, or is too large, becomes a dead letter
  (:mod:`preflog.processors.outputs`).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record, reference_problems
from preflog.schemas.exceptions import DecodeError, ValidationError

from .exceptions import StateError
from .outputs import Emit, OutputEncoder, Source
from .pairs import ScoreMode, expand
from .records import pair_record, signal_record, unmatched_record

if TYPE_CHECKING:
    from preflog.settings import Settings

__all__ = ["Emit", "JoinConfig", "Joiner"]

log = logging.getLogger(__name__)
Record = dict[str, Any]
STREAM_TIME_KEY = "~stream-time/{}"


@dataclass(frozen=True)
class JoinConfig:
    """Window and pairing settings (milliseconds)."""

    window_ms: int = 3_600_000
    grace_ms: int = 300_000
    late_retention_ms: int = 86_400_000
    idle_timeout_ms: int = 30_000
    score_margin: float = 0.0
    score_mode: ScoreMode = "all"
    max_input_bytes: int = 600_000
    max_output_bytes: int = 900_000
    max_event_time_skew_ms: int = 3_600_000
    max_entry_bytes: int = 950_000

    @classmethod
    def from_settings(cls, settings: Settings) -> JoinConfig:
        """The join settings of ``settings.processor``, in milliseconds."""
        p = settings.processor
        return cls(
            window_ms=int(p.window_s * 1000),
            grace_ms=int(p.grace_s * 1000),
            late_retention_ms=int(p.late_retention_s * 1000),
            idle_timeout_ms=int(p.idle_timeout_s * 1000),
            score_margin=p.score_margin,
            score_mode=p.score_mode,
            max_input_bytes=p.max_input_bytes,
            max_output_bytes=p.max_output_bytes,
            max_event_time_skew_ms=int(p.max_event_time_skew_s * 1000),
            max_entry_bytes=p.max_state_entry_bytes,
        )


#: what one waiting feedback, one remembered feedback_id and an entry itself add to a stored entry (JSON), at most
_FB_BYTES, _SEEN_BYTES, _ENTRY_BYTES = 256, 48, 512


def _entry_bytes(entry: Record) -> int:
    """An upper bound of the size of ``entry`` as the table stores it (JSON, values in base64)."""
    size = _ENTRY_BYTES + _SEEN_BYTES * len(entry.get("seen") or ())
    if entry.get("inf"):
        size += len(entry["inf"]["v"]) + _FB_BYTES
    return size + sum(len(fb["v"]) + _FB_BYTES for fb in entry.get("fb") or ())


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class Joiner:
    """Join state machine over ``state`` (request_id -> entry)."""

    def __init__(
        self,
        config: JoinConfig,
        codec: Codec,
        state: MutableMapping[str, Any],
        inference_topic: str,
        feedback_topic: str,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        output_topics: Mapping[str, str] | None = None,
        output_codec: Codec | None = None,
    ) -> None:
        """``wall_ms`` is the clock of the idle fallback and of dead letters' ``failed_at``; outputs are encoded
        with ``output_codec`` (default ``codec``) for ``output_topics`` (role -> topic name)."""
        self.config = config
        self.codec = codec
        self.state = state
        self.inference_topic = inference_topic
        self.feedback_topic = feedback_topic
        self.wall_ms = wall_ms
        self.stream_time: dict[int, int] = {}
        self.duplicates = 0
        self._due: dict[int, list[tuple[int, str]]] = {}
        self._last_event: dict[int, tuple[int, int]] = {}  # partition -> (wall ms, stream time) at last event
        self._persisted: dict[int, int] = {}  # partition -> stream time last written to state
        self._full: set[str] = set()  # request_ids whose entry stopped remembering feedback ids (warned once)
        self.encoder = OutputEncoder(output_codec or codec, output_topics or {}, config.max_output_bytes, wall_ms)

    # -- entry points -------------------------------------------------------------------------

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
    ) -> list[Emit]:
        """Handle one record of the inference or feedback topic (``timestamp_ms``: its Kafka timestamp, if known)."""
        at = {"topic": topic, "partition": partition, "offset": offset}
        out: list[Emit] = []
        try:
            return self._process(topic, partition, key, value, timestamp_ms, at, out)
        except StateError:
            raise
        except Exception as exc:  # a bug the record revealed: it gets a dead letter, the worker goes on
            log.exception("the join failed on %s[%d] offset %d; the record is dead-lettered", topic, partition, offset)
            reason = f"the join failed on this record: {type(exc).__name__}: {exc}"
            return [*out, self._dead(reason, "JoinError", "join", key, value, at)]

    def _process(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        at: Record,
        out: list[Emit],
    ) -> list[Emit]:
        record_type = "InferenceEvent" if topic == self.inference_topic else "FeedbackEvent"
        c = self.config
        if len(value or b"") > c.max_input_bytes:
            reason = (
                f"the value is {len(value or b'')} bytes, over max_input_bytes={c.max_input_bytes} "
                "(PREFLOG_PROCESSOR__MAX_INPUT_BYTES); it is not joined or stored"
            )
            return [self._dead(reason, "InputTooLarge", "validate", key, value, at)]
        try:
            decoded = self.codec.decode(value or b"", record_type, topic)
            if record_type == "InferenceEvent":
                record = inference_record(decoded, check_schema=False)
            else:
                record = feedback_record(decoded, check_schema=False)
        except DecodeError as exc:
            return [self._dead(str(exc), "DecodeError", "decode", key, value, at)]
        except ValidationError as exc:
            return [self._dead(str(exc), "ValidationError", "validate", key, value, at)]
        rid = record["request_id"]
        if key is None or key.decode(errors="replace") != rid:
            reason = f"key {key!r} does not match request_id {rid}; producers must key records by request_id"
            return [self._dead(reason, "KeyMismatch", "validate", key, value, at)]
        event_ms = _ms(record["event_time"])
        if timestamp_ms is not None and timestamp_ms > 0:  # -1: the record has no timestamp
            reference = min(timestamp_ms, self.wall_ms())
            if event_ms - reference > c.max_event_time_skew_ms:
                reason = (
                    f"event_time {record['event_time'].isoformat()} ({event_ms} ms) is {event_ms - reference} ms "
                    f"ahead of the record's Kafka timestamp {timestamp_ms} ms (or the worker's clock, if earlier: "
                    f"{reference} ms); max_event_time_skew_s={c.max_event_time_skew_ms / 1000:g} "
                    "(PREFLOG_PROCESSOR__MAX_EVENT_TIME_SKEW_S)"
                )
                return [self._dead(reason, "EventTimeSkew", "validate", key, value, at)]
            self._unpoison(partition, event_ms)
        out += self._advance(partition, event_ms)  # kept if the join then fails on this record
        if record_type == "InferenceEvent":
            out += self._on_inference(partition, rid, value or b"", record, at)
        else:
            out += self._on_feedback(partition, rid, value or b"", record, at)
        return out

    def tick(self, partition: int) -> list[Emit]:
        """Idle fallback: move stream time on with the wall clock when the partition is quiet."""
        now = self.wall_ms()
        if partition not in self.stream_time:
            saved = self._saved_stream_time(partition)
            if saved is not None:
                self.stream_time[partition] = saved
        last_wall, last_stream = self._last_event.setdefault(partition, (now, self.stream_time.get(partition, 0)))
        out: list[Emit] = []
        if now - last_wall >= self.config.idle_timeout_ms and last_stream:
            out = self._expire(partition, last_stream + (now - last_wall))
        st = self.stream_time.get(partition)
        if st is not None and st != self._persisted.get(partition):  # a changelog write only when it moved
            self.state[STREAM_TIME_KEY.format(partition)] = {"st": st, "p": partition}
            self._persisted[partition] = st
        return out

    def forget_index(self) -> None:
        """Drop the in-memory expiry index (after a rebalance); it is rebuilt from state on demand."""
        self._due.clear()
        self.stream_time.clear()
        self._last_event.clear()
        self._persisted.clear()

    # -- stream time and expiry -----------------------------------------------------------------

    def _saved_stream_time(self, partition: int) -> int | None:
        saved = self.state.get(STREAM_TIME_KEY.format(partition))
        return int(saved["st"]) if saved else None

    def _unpoison(self, partition: int, event_ms: int) -> None:
        """Drop a stream time further ahead of the clock than any event may be (saved before the skew check)."""
        if partition not in self.stream_time:
            saved = self._saved_stream_time(partition)
            if saved is None:
                return
            self.stream_time[partition] = saved
        limit = self.wall_ms() + self.config.max_event_time_skew_ms
        if self.stream_time[partition] > limit:
            log.warning(
                "partition %d: stream time %d ms is ahead of the clock by more than max_event_time_skew_s (an event "
                "time accepted before that check); it restarts from this event's time %d ms",
                partition,
                self.stream_time[partition],
                event_ms,
            )
            self.stream_time[partition] = event_ms

    def _advance(self, partition: int, event_ms: int) -> list[Emit]:
        if partition not in self.stream_time:
            saved = self._saved_stream_time(partition)
            self.stream_time[partition] = event_ms if saved is None else saved
        out = self._expire(partition, max(self.stream_time[partition], event_ms))
        self._last_event[partition] = (self.wall_ms(), self.stream_time[partition])
        return out

    def _index(self, partition: int) -> list[tuple[int, str]]:
        if partition not in self._due:
            heap = [
                (entry["exp"], rid)
                for rid, entry in self.state.items()
                if not rid.startswith("~") and entry.get("p") == partition
            ]
            heapq.heapify(heap)
            self._due[partition] = heap
        return self._due[partition]

    def _schedule(self, partition: int, rid: str, entry: Record) -> None:
        self.state[rid] = entry
        heapq.heappush(self._index(partition), (entry["exp"], rid))

    def _expire(self, partition: int, stream_ms: int) -> list[Emit]:
        self.stream_time[partition] = max(self.stream_time.get(partition, 0), stream_ms)
        st = self.stream_time[partition]
        heap = self._index(partition)
        out: list[Emit] = []
        while heap and heap[0][0] < st:
            exp, rid = heapq.heappop(heap)
            entry = self.state.get(rid)
            if entry is not None and entry["exp"] == exp:
                try:
                    out += self._expire_entry(partition, rid, entry, st)
                except StateError:
                    raise
                except Exception as exc:
                    out += self._expiry_failed(rid, entry, exc)
        return out

    def _expiry_failed(self, rid: str, entry: Record, exc: Exception) -> list[Emit]:
        """The stored records of an entry whose expiry failed, dead-lettered; the entry is dropped."""
        log.exception("expiring request_id %s failed; its stored records are dead-lettered", rid)
        reason = f"the join failed expiring this stored record: {type(exc).__name__}: {exc}"
        stored = [entry["inf"]] if entry.get("inf") else list(entry.get("fb") or [])
        self.state.pop(rid, None)
        key = rid.encode()
        return [self._dead(reason, "JoinError", "join", key, base64.b64decode(s["v"]), s["at"]) for s in stored]

    def _expire_entry(self, partition: int, rid: str, entry: Record, st: int) -> list[Emit]:
        out: list[Emit] = []
        if entry.get("done"):
            del self.state[rid]
            return out
        c = self.config
        if entry.get("inf"):
            inf = entry["inf"]
            if entry["n"] == 0:
                value = base64.b64decode(inf["v"])
                record = self.codec.decode(value, "InferenceEvent", inf["at"]["topic"])
                detail = f"no valid feedback within {c.window_ms} ms (+{c.grace_ms} ms grace) of the inference"
                out.append(self._unmatched("NO_FEEDBACK", detail, "InferenceEvent", record, st, value, inf["at"]))
            marker = {"p": partition, "done": True, "h": entry["h"], "seen": entry["seen"]}
            marker["exp"] = entry["exp"] + c.late_retention_ms
            self._schedule(partition, rid, marker)
            return out
        for fb in entry["fb"]:
            value = base64.b64decode(fb["v"])
            record = self.codec.decode(value, "FeedbackEvent", fb["at"]["topic"])
            detail = f"no inference with this request_id arrived within {c.window_ms + c.grace_ms} ms of the feedback"
            out.append(self._unmatched("NO_INFERENCE", detail, "FeedbackEvent", record, st, value, fb["at"]))
        del self.state[rid]
        return out

    # -- events ---------------------------------------------------------------------------------

    def _on_inference(self, partition: int, rid: str, value: bytes, record: Record, at: Record) -> list[Emit]:
        entry = self.state.get(rid)
        digest = hashlib.sha256(value).hexdigest()
        if entry is not None and (entry.get("inf") or entry.get("done")):
            if entry["h"] == digest:
                self.duplicates += 1
                return []
            first = entry["inf"]["at"] if entry.get("inf") else "an expired inference"
            reason = f"request_id {rid} is already used by an inference with different content (first: {first})"
            key = rid.encode()
            return [self._dead(reason, "ConflictingInference", "join", key, value, at)]
        c = self.config
        event_ms = _ms(record["event_time"])
        pending = entry["fb"] if entry else []
        entry = {
            "p": partition,
            "inf": {"v": _b64(value), "at": at, "et": event_ms},
            "h": digest,
            "exp": event_ms + c.window_ms + c.grace_ms,
            "n": 0,
            "seen": [],
        }
        out: list[Emit] = []
        for fb in pending:
            fb_value = base64.b64decode(fb["v"])
            fb_record = self.codec.decode(fb_value, "FeedbackEvent", fb["at"]["topic"])
            out += self._join(entry, record, fb_record, fb_value, fb["at"])
        if entry["exp"] < self.stream_time[partition]:  # the inference itself arrived after its window closed
            self.state[rid] = entry
            return out + self._expire_entry(partition, rid, entry, self.stream_time[partition])
        self._schedule(partition, rid, entry)
        return out

    def _on_feedback(self, partition: int, rid: str, value: bytes, record: Record, at: Record) -> list[Emit]:
        entry = self.state.get(rid) or {"p": partition, "inf": None, "fb": [], "seen": [], "exp": 0}
        fid = record["feedback_id"]
        if fid in entry["seen"] or any(fb["id"] == fid for fb in entry.get("fb", ())):
            self.duplicates += 1
            return []
        st = self.stream_time[partition]
        if entry.get("done"):
            self._remember(entry, rid, fid)
            self.state[rid] = entry
            detail = "feedback arrived after its inference expired from the join window"
            return [self._unmatched("LATE", detail, "FeedbackEvent", record, st, value, at)]
        if not entry.get("inf"):
            size, limit = _entry_bytes(entry), self.config.max_entry_bytes
            if size + len(_b64(value)) + _FB_BYTES > limit:
                reason = (
                    f"{len(entry['fb'])} feedback record(s) already wait for the inference of request_id {rid} "
                    f"(about {size} bytes of join state); this {len(value)}-byte feedback would take the entry over "
                    f"max_state_entry_bytes={limit} (PREFLOG_PROCESSOR__MAX_STATE_ENTRY_BYTES)"
                )
                return [self._dead(reason, "InputTooLarge", "join", rid.encode(), value, at)]
            entry["fb"].append({"id": fid, "v": _b64(value), "at": at})
            entry["exp"] = max(entry["exp"], _ms(record["event_time"]) + self.config.window_ms + self.config.grace_ms)
            self._schedule(partition, rid, entry)
            return []
        inf = entry["inf"]
        inference = self.codec.decode(base64.b64decode(inf["v"]), "InferenceEvent", inf["at"]["topic"])
        out = self._join(entry, inference, record, value, at)
        self.state[rid] = entry
        return out

    def _remember(self, entry: Record, rid: str, fid: str) -> None:
        """Record a judged feedback_id, unless the entry is full (a redelivery then repeats its pair_ids)."""
        if _entry_bytes(entry) + _SEEN_BYTES > self.config.max_entry_bytes:
            if rid in self._full:
                return
            if len(self._full) < 10_000:  # warn once per request_id (a bounded memory of them)
                self._full.add(rid)
            log.warning(
                "request_id %s: %d feedback ids already stored, max_state_entry_bytes=%d reached; feedback %s is "
                "not remembered (a redelivered copy would repeat its pair_ids, which the sink deduplicates)",
                rid,
                len(entry["seen"]),
                self.config.max_entry_bytes,
                fid,
            )
            return
        entry["seen"].append(fid)

    def _join(self, entry: Record, inference: Record, feedback: Record, value: bytes, at: Record) -> list[Emit]:
        self._remember(entry, inference["request_id"], feedback["feedback_id"])
        rid = inference["request_id"].encode()
        inf_at = entry["inf"]["at"]
        c = self.config
        gap = _ms(feedback["event_time"]) - entry["inf"]["et"]
        if gap > c.window_ms:
            detail = f"feedback is {gap} ms after its inference; the window is {c.window_ms} ms"
            st = self.stream_time[at["partition"]]
            return [self._unmatched("LATE", detail, "FeedbackEvent", feedback, st, value, at)]
        problems = reference_problems(feedback, len(inference["candidates"]))
        if problems:
            reason = "invalid reference: " + "; ".join(problems)
            return [self._dead(reason, "InvalidReference", "join", rid, value, at)]
        entry["n"] += 1
        source = Source(rid, value, at, inf_at)  # a dead letter made from here names the inference too
        if feedback["kind"] in ("RATING", "IMPLICIT"):
            return [self.encoder.emit("unpaired", rid, signal_record(inference, feedback, inf_at, at), source)]
        prefs = expand(feedback, c.score_margin, c.score_mode)
        if not prefs:
            st = self.stream_time[at["partition"]]
            detail = _no_pairs(feedback, c)
            return [self._unmatched("NO_PAIRS", detail, "FeedbackEvent", feedback, st, value, at, inf_at)]
        return [self.encoder.emit("pairs", rid, pair_record(inference, feedback, p, inf_at, at), source) for p in prefs]

    def _dead(
        self, reason: str, error_class: str, stage: str, key: bytes | None, value: bytes | None, at: Record
    ) -> Emit:
        return self.encoder.dead(reason, error_class, stage, Source(key, value, at))

    def _unmatched(
        self,
        reason: str,
        detail: str,
        kind: str,
        record: Record,
        st: int,
        value: bytes,
        at: Record,
        inference_at: Record | None = None,
    ) -> Emit:
        rid = str(record["request_id"]).encode()
        unmatched = unmatched_record(reason, detail, kind, record, st, value, at, inference_at)
        return self.encoder.emit("unmatched", rid, unmatched, Source(rid, value, at, inference_at))


def _no_pairs(feedback: Record, c: JoinConfig) -> str:
    """Why a PAIRWISE, RANKING or SCORES feedback decided no pair."""
    if feedback["kind"] == "RANKING":
        return "every candidate in the ranking has the same rank: a ranking of ties decides no pair"
    return (
        f"no two scores differ by more than score_margin={c.score_margin} (score_mode={c.score_mode}): "
        "the scores decide no pair"
    )
