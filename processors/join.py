"""The join: feedback matched to inference on request_id within an event-time window.

:class:`Joiner` is plain, synchronous Python over a mapping of request_id to
typed :class:`~preflog.processors.entry.Entry` (the worker's view of its Faust
Table, or a dict). Each call returns what to emit; it never drops a record
silently. Semantics (expiry: :mod:`preflog.processors.expiry`; the checks before
the join: :mod:`preflog.processors.admission`):

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
  an input over ``max_input_bytes`` is dead-lettered and never stored (InputTooLarge); an
  event time more than ``max_event_time_skew`` ahead of its Kafka timestamp
  (and of the clock) is dead-lettered (EventTimeSkew) and never moves stream
  time; feedback that decides no pair is unmatched NO_PAIRS; every output is
  encoded here, and one that cannot be, or is too large, becomes a dead letter
  (:mod:`preflog.processors.outputs`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from preflog.schemas.codec import Codec
from preflog.schemas.events import reference_problems
from preflog.schemas.references import references_fine

from .admission import Admitted, Rejection, admit
from .admission import ms as _ms
from .decoded import DecodedInferences, DecodedRecords
from .entry import Entry, Stored, entry_size, stored_size
from .exceptions import StateError
from .expiry import Expiry
from .join_config import JoinConfig
from .outputs import Emit, OutputEncoder, Source
from .pairs import Preference, expand, no_pairs_detail, resealed_digest, tenant_problem
from .records import pair_record, provenance, signal_record, turn_record
from .splice import PairSplicer, spliced
from .splice_signal import SignalSplicer

__all__ = ["Emit", "JoinConfig", "Joiner"]

log = logging.getLogger(__name__)
Record = dict[str, Any]


class Joiner(Expiry):
    """Join state machine over ``state`` (request_id -> :class:`~preflog.processors.entry.Entry`).

    Args:
        config: window, pairing and size settings.
        codec: decodes the input records.
        state: request_id -> entry; a plain dict, or the worker's view of its Faust Table.
        inference_topic: the topic of inference records.
        feedback_topic: the topic of feedback records.
        wall_ms: the clock of the idle fallback and of dead letters' ``failed_at``.
        output_topics: role -> topic name, for the outputs' encoding.
        output_codec: encodes the outputs (default ``codec``).
        stream_times: partition -> saved stream time (default: a dict of its own).
    """

    def __init__(
        self,
        config: JoinConfig,
        codec: Codec,
        state: MutableMapping[str, Entry],
        inference_topic: str,
        feedback_topic: str,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        output_topics: Mapping[str, str] | None = None,
        output_codec: Codec | None = None,
        stream_times: MutableMapping[int, int] | None = None,
    ) -> None:
        encoder = OutputEncoder(output_codec or codec, output_topics or {}, config.max_output_bytes, wall_ms)
        super().__init__(config, codec, state, {} if stream_times is None else stream_times, encoder, wall_ms)
        self.inference_topic = inference_topic
        self.feedback_topic = feedback_topic
        self.duplicates = 0
        self._full: set[str] = set()  # request_ids whose entry stopped remembering feedback ids (warned once)
        self.decoded = DecodedInferences(codec)
        self.waiting = DecodedRecords(codec, "FeedbackEvent")  # feedback waiting for its inference, decoded
        topics = output_topics or {}
        self.splicer = PairSplicer(codec, output_codec or codec, topics.get("pairs", ""))
        self.signals = SignalSplicer(codec, output_codec or codec, topics.get("unpaired", ""))

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
    ) -> list[Emit]:
        """Handle one record of the inference or feedback topic.

        Args:
            topic: the record's topic.
            partition: its partition.
            offset: its offset.
            key: its key (the request_id).
            value: its wire bytes.
            timestamp_ms: its Kafka timestamp, if known.

        Returns:
            What to emit; every record gets an outcome (an empty list: it waits in state, or was seen before).

        Raises:
            StateError: the state store failed (the worker stops).
        """
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
        admitted = admit(self.codec, self.config, topic, record_type, key, value, timestamp_ms, self.wall_ms)
        if isinstance(admitted, Rejection):
            return [self._dead(admitted.reason, admitted.error_class, admitted.stage, key, value, at)]
        rid, event_ms = admitted.record["request_id"], admitted.event_ms
        if timestamp_ms is not None and timestamp_ms > 0:  # passed the skew check: a saved stream time may not
            self._unpoison(partition, event_ms)
        out += self._advance(partition, event_ms)  # kept if the join then fails on this record
        if record_type == "InferenceEvent":
            out += self._on_inference(partition, rid, value or b"", at, admitted)
        else:
            out += self._on_feedback(partition, rid, value or b"", at, admitted)
        return out

    def _on_inference(self, partition: int, rid: str, value: bytes, at: Record, admitted: Admitted) -> list[Emit]:
        record = admitted.record
        entry = self.state.get(rid)
        digest = hashlib.sha256(value).digest()
        resealed = resealed_digest(record)  # a sealed inference sent again has other bytes
        if entry is not None and (entry.inference or entry.done):
            if entry.digest in (digest, resealed):
                self.duplicates += 1
                return []
            first = entry.inference.at if entry.inference else "an expired inference"
            reason = f"request_id {rid} is already used by an inference with different content (first: {first})"
            return [self._dead(reason, "ConflictingInference", "join", rid.encode(), value, at)]
        c = self.config
        event_ms = admitted.event_ms
        pending = entry.feedback if entry else []
        inference = Stored(value, at["topic"], partition, at["offset"], event_ms=event_ms)
        entry = Entry(partition, event_ms + c.window_ms + c.grace_ms, inference, digest=resealed or digest)
        if admitted.decoded is not None:  # what decoding these bytes gives, as a feedback would decode them
            self.decoded.keep(rid, value, admitted.decoded, admitted.marks)
        out: list[Emit] = []
        if record.get("conversation") is not None:  # kept for later turns that give their history by reference
            source = Source(rid.encode(), value, at)
            out.append(self.encoder.emit("turns", rid.encode(), turn_record(record, at), source))
        for fb in pending:
            feedback, marks = self.waiting.take(fb.feedback_id, fb)
            views = None if marks is None or admitted.marks is None else ((value, admitted.marks), (fb.value, marks))
            out += self._join(entry, record, feedback, _ms(feedback["event_time"]), fb.value, fb.at, views)
        if entry.expires_ms < self.stream_time[partition]:  # the inference itself arrived after its window closed
            self._put(partition, rid, entry)
            return out + self._expire_entry(partition, rid, entry, self.stream_time[partition])
        self._schedule(partition, rid, entry)
        return out

    def _on_feedback(self, partition: int, rid: str, value: bytes, at: Record, admitted: Admitted) -> list[Emit]:
        record = admitted.record
        entry = self.state.get(rid) or Entry(partition)
        fid = record["feedback_id"]
        if fid in entry.seen or any(fb.feedback_id == fid for fb in entry.feedback):
            self.duplicates += 1
            return []
        st = self.stream_time[partition]
        if entry.done:
            self._remember(entry, rid, fid)
            self._put(partition, rid, entry)
            detail = "feedback arrived after its inference expired from the join window"
            return [self._unmatched("LATE", detail, "FeedbackEvent", record, st, value, at)]
        if not entry.inference:
            waiting = Stored(value, at["topic"], partition, at["offset"], feedback_id=fid)
            size, limit = entry_size(entry), self.config.max_entry_bytes
            if size + stored_size(waiting) > limit:
                reason = (
                    f"{len(entry.feedback)} feedback record(s) already wait for the inference of request_id {rid} "
                    f"(about {size} bytes of join state); this {len(value)}-byte feedback would take the entry over "
                    f"max_state_entry_bytes={limit} (PREFLOG_PROCESSOR__MAX_STATE_ENTRY_BYTES)"
                )
                return [self._dead(reason, "InputTooLarge", "join", rid.encode(), value, at)]
            entry.feedback.append(waiting)
            if admitted.decoded is not None:  # decoded as the inference's arrival would decode it again
                self.waiting.keep(fid, value, admitted.decoded, admitted.marks)
            c = self.config
            entry.expires_ms = max(entry.expires_ms, admitted.event_ms + c.window_ms + c.grace_ms)
            self._schedule(partition, rid, entry)
            return []
        inference, marks = self.decoded.get(rid, entry.inference)
        views = None  # the inputs' bytes and marks, to splice pairs from (when both decoded on the fast path)
        if marks is not None and admitted.marks is not None and admitted.decoded is not None:
            views = ((entry.inference.value, marks), (value, admitted.marks))
        out = self._join(entry, inference, record, admitted.event_ms, value, at, views)
        self._put(partition, rid, entry)
        return out

    def _remember(self, entry: Entry, rid: str, fid: str) -> None:
        """Record a judged feedback_id, unless the entry is full (a redelivery then repeats its pair_ids)."""
        if entry_size(entry) + 2 + len(fid.encode()) > self.config.max_entry_bytes:
            if rid in self._full:
                return
            if len(self._full) < 10_000:  # warn once per request_id (a bounded memory of them)
                self._full.add(rid)
            log.warning(
                "request_id %s: %d feedback ids already stored, max_state_entry_bytes=%d reached; feedback %s is "
                "not remembered (a redelivered copy would repeat its pair_ids, which the sink deduplicates)",
                rid,
                len(entry.seen),
                self.config.max_entry_bytes,
                fid,
            )
            return
        entry.seen.append(fid)

    def _join(
        self, entry: Entry, inference: Record, feedback: Record, feedback_ms: int, value: bytes, at: Record, views: Any
    ) -> list[Emit]:
        self._remember(entry, inference["request_id"], feedback["feedback_id"])
        rid = inference["request_id"].encode()
        assert entry.inference is not None  # only an entry with its inference joins
        inf_at = entry.inference.at
        c = self.config
        gap = feedback_ms - entry.inference.event_ms
        if gap > c.window_ms:
            detail = f"feedback is {gap} ms after its inference; the window is {c.window_ms} ms"
            st = self.stream_time[at["partition"]]
            return [self._unmatched("LATE", detail, "FeedbackEvent", feedback, st, value, at)]
        foreign = tenant_problem(inference, feedback)
        if foreign is not None:
            return [self._dead(foreign, "TenantMismatch", "join", rid, value, at)]
        count = len(inference["candidates"])
        problems = [] if references_fine(feedback, count) else reference_problems(feedback, count)
        if problems:
            reason = "invalid reference: " + "; ".join(problems)
            return [self._dead(reason, "InvalidReference", "join", rid, value, at)]
        entry.judged += 1
        source = Source(rid, value, at, inf_at)  # a dead letter made from here names the inference too
        if feedback["kind"] in ("RATING", "IMPLICIT"):
            signal = signal_record(inference, feedback, inf_at, at)
            encoded = spliced(self.signals.signal, signal, *views) if views and self.signals.usable else None
            return [self.encoder.emit("unpaired", rid, signal, source, encoded)]
        prefs = expand(feedback, c.score_margin, c.score_mode)
        if not prefs:
            st = self.stream_time[at["partition"]]
            detail = no_pairs_detail(feedback, c.score_margin, c.score_mode)
            return [self._unmatched("NO_PAIRS", detail, "FeedbackEvent", feedback, st, value, at, inf_at)]
        shared = provenance(inference, feedback, inf_at, at)
        return [
            self._pair(rid, pair_record(inference, feedback, p, inf_at, at, shared), p, source, views) for p in prefs
        ]

    def _pair(self, rid: bytes, record: Record, pref: Preference, source: Source, views: Any) -> Emit:
        value = spliced(self.splicer.pair, record, pref, *views) if views and self.splicer.usable else None
        return self.encoder.emit("pairs", rid, record, source, value)

    def _decoded_inference(self, rid: str, stored: Stored) -> Record:
        return self.decoded.get(rid, stored)[0]

    def _forget_decoded(self, rid: str) -> None:
        self.decoded.forget(rid)

    def _waiting_feedback(self, stored: Stored) -> Record:
        return self.waiting.take(stored.feedback_id, stored)[0]
