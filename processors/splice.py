"""PreferencePair bytes assembled from the encoded fields of its inference and feedback.

Most of a pair's fields are fields of its inputs with the same Avro type
(prompt, candidates' texts and models, sampling, context, source, times,
metadata). When the codec's fast path decoded an input (canonical encoding,
so its bytes are what fastavro writes for the decoded values), those fields
are copied from the input's value; the others (ids, indices, scores, offsets)
are encoded here. The result is byte for byte what encoding the pair record
gives (tested against fastavro); :class:`PairSplicer` is only used when the
schemas line up field by field, checked once at start. UnpairedSignals are
spliced the same way (:mod:`preflog.processors.splice_signal`, on the
:class:`Splicer` base here).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from preflog.schemas.codec import Codec
from preflog.schemas.fast_reader import Marks
from preflog.schemas.varint import ONE_BYTE, avro_long

from .pairs import Preference

__all__ = [
    "PairSplicer",
    "Splicer",
    "avro_long",
    "avro_string",
    "field_shapes",
    "optional_double",
    "source_offset",
    "spliced",
]

Record = dict[str, Any]
_DOUBLE = struct.Struct("<d").pack
INFERENCE: tuple[str, ...] = ("request_id", "event_time", "prompt", "prompt_messages", "conversation", "tools")
INFERENCE += ("candidates", "model", "prompt_tokens", "sampling", "context", "metadata")
CANDIDATE: tuple[str, ...] = ("index", "text", "messages", "completion_tokens", "finish_reason", "model")
FEEDBACK: tuple[str, ...] = ("feedback_id", "request_id", "event_time", "kind", "pairwise", "ranking", "scores")
FEEDBACK += ("rating", "implicit", "source", "explicit", "rationale", "metadata")
#: output field -> (input, field) whose encoding it copies ("candidate": the chosen or rejected one)
COPIED = {
    "prompt": ("inference", "prompt"),
    "prompt_messages": ("inference", "prompt_messages"),
    "conversation": ("inference", "conversation"),
    "tools": ("inference", "tools"),
    "chosen": ("candidate", "text"),
    "rejected": ("candidate", "text"),
    "chosen_messages": ("candidate", "messages"),
    "rejected_messages": ("candidate", "messages"),
    "model": ("inference", "model"),
    "chosen_model": ("candidate", "model"),
    "rejected_model": ("candidate", "model"),
    "sampling": ("inference", "sampling"),
    "context": ("inference", "context"),
    "source": ("feedback", "source"),
    "explicit": ("feedback", "explicit"),
    "rationale": ("feedback", "rationale"),
    "inference_time": ("inference", "event_time"),
    "feedback_time": ("feedback", "event_time"),
    "inference_metadata": ("inference", "metadata"),
    "feedback_metadata": ("feedback", "metadata"),
}
#: the types of the fields encoded here
OWN = {
    "pair_id": "string",
    "request_id": "string",
    "feedback_id": "string",
    "chosen_index": "int",
    "rejected_index": "int",
    "chosen_score": ("union", ("null", "double")),
    "rejected_score": ("union", ("null", "double")),
    "margin": ("union", ("null", "double")),
    "join_latency_ms": "long",
    "inference_offset": ("record", (("topic", "string"), ("partition", "int"), ("offset", "long"))),
    "feedback_offset": ("record", (("topic", "string"), ("partition", "int"), ("offset", "long"))),
}
PAIR: tuple[str, ...] = ("pair_id", "request_id", "feedback_id", "feedback_kind", "prompt", "prompt_messages")
PAIR += ("conversation", "tools", "chosen", "rejected", "chosen_messages", "rejected_messages")
PAIR += ("chosen_index", "rejected_index")
PAIR += ("chosen_score", "rejected_score", "margin", "model", "chosen_model", "rejected_model", "sampling")
PAIR += ("context", "source", "explicit", "rationale", "inference_time", "feedback_time", "join_latency_ms")
PAIR += ("inference_offset", "feedback_offset", "inference_metadata", "feedback_metadata")


def _shape(schema: Any, named: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """The type of ``schema`` with names resolved and docs, names and defaults left out."""
    if isinstance(schema, list):
        return ("union", tuple(_shape(s, named, seen) for s in schema))
    if isinstance(schema, str):
        if schema not in named:
            return schema
        if schema in seen:
            raise ValueError(f"recursive type {schema}")
        return _shape(named[schema], named, (*seen, schema))
    kind = schema["type"]
    if isinstance(kind, (dict, list)) or kind in named:
        return _shape(kind, named, seen)
    if kind == "record":
        return ("record", tuple((f["name"], _shape(f["type"], named, seen)) for f in schema["fields"]))
    if kind == "enum":
        return ("enum", tuple(schema["symbols"]))
    if kind == "array":
        return ("array", _shape(schema["items"], named, seen))
    if kind == "map":
        return ("map", _shape(schema["values"], named, seen))
    return (kind, schema.get("logicalType")) if schema.get("logicalType") else kind


def field_shapes(schema: Any) -> dict[str, Any]:
    """Field name -> its type (names resolved; docs, names and defaults left out) of a parsed record schema."""
    named = schema.get("__named_schemas", {})
    return {f["name"]: _shape(f["type"], named) for f in schema["fields"]}


def avro_string(text: str) -> bytes:
    """``text`` as an Avro string."""
    data = text.encode()
    n = len(data)
    return (ONE_BYTE[n << 1] if n < 64 else avro_long(n)) + data


def optional_double(value: float | None) -> bytes:
    """``value`` as an Avro ``["null", "double"]``."""
    return b"\x00" if value is None else b"\x02" + _DOUBLE(value)


def source_offset(at: Record) -> bytes:
    """A SourceOffset record (topic, partition, offset)."""
    return avro_string(at["topic"]) + avro_long(at["partition"]) + avro_long(at["offset"])


def spliced(splice: Callable[..., bytes], *args: Any) -> bytes | None:
    """``splice(*args)``, or None when the inputs cannot be spliced after all (the record is encoded instead)."""
    try:
        return splice(*args)
    except Exception:  # a candidate out of place, a value not of its type: encoding the record says what
        return None


class Splicer:
    """What splicing an output needs: where input bodies start, the output's header, whether schemas line up.

    Args:
        codec: the input codec (its ``header_size``: where a value's body starts).
        output_codec: the codec of the outputs (its ``header`` gives the framing of the output).
        record_type: the output's record type.
        topic: the output's topic.
    """

    def __init__(self, codec: Codec, output_codec: Codec, record_type: str, topic: str) -> None:
        self.usable = False
        self.start = getattr(codec, "header_size", None)
        self._header_of, self.record_type, self.topic = getattr(output_codec, "header", None), record_type, topic
        self._header = b""  # asked of the output codec on first use (a registry codec registers the schema then)
        store = getattr(codec, "store", None)
        if self._header_of is None or self.start is None or store is None:
            return
        try:
            self.usable = self._line_up(store)
        except Exception:  # another schema: encode the record instead
            self.usable = False

    @property
    def header(self) -> bytes:
        """The framing of the output (asked once)."""
        if not self._header:
            self._header = self._header_of(self.record_type, self.topic)  # type: ignore[misc]
        return self._header

    #: the output's fields, in order
    fields: tuple[str, ...] = ()
    #: output field -> (input, field) whose encoding it copies ("candidate": the chosen or rejected one)
    copied: Mapping[str, tuple[str, str]] = {}
    #: output field -> the type of a field encoded here
    own: Mapping[str, Any] = {}

    def _line_up(self, store: Any) -> bool:
        """Whether the output's fields are the inputs' (names and types), so that splicing gives its encoding."""
        inputs = self._inputs(store)
        output = field_shapes(store.latest(self.record_type).reader)
        if inputs is None or tuple(output) != self.fields:
            return False
        if any(output[name] != inputs[side][field] for name, (side, field) in self.copied.items()):
            return False
        if any(output[name] != shape for name, shape in self.own.items()):
            return False
        self.kinds = output["feedback_kind"][1]
        return bool(output["feedback_kind"][0] == "enum")

    def _inputs(self, store: Any) -> dict[str, dict[str, Any]] | None:
        """The inputs' field shapes by side (inference, feedback, candidate), or None when they are not these."""
        inference = field_shapes(store.latest("InferenceEvent").reader)
        feedback = field_shapes(store.latest("FeedbackEvent").reader)
        if tuple(inference) != INFERENCE or tuple(feedback) != FEEDBACK:
            return None
        candidate = dict(inference["candidates"][1][1])
        if tuple(candidate) != CANDIDATE:
            return None
        return {"inference": inference, "feedback": feedback, "candidate": candidate}


class PairSplicer(Splicer):
    """Encodes PreferencePairs from their inputs' bytes; ``usable`` is False when the schemas do not line up.

    Args:
        codec: the input codec (its ``header_size``: where a value's body starts).
        output_codec: the codec of the outputs (its ``header`` gives the framing of a PreferencePair).
        topic: the pairs topic.
    """

    fields, copied, own = PAIR, COPIED, OWN

    def __init__(self, codec: Codec, output_codec: Codec, topic: str) -> None:
        super().__init__(codec, output_codec, "PreferencePair", topic)

    def pair(
        self, record: Record, pref: Preference, inference: tuple[bytes, Marks], feedback: tuple[bytes, Marks]
    ) -> bytes:
        """The encoded PreferencePair ``record`` (made of ``pref``), from the inputs' (value, marks).

        Every value not copied from the inputs is taken from ``record``, so the bytes are the record's.

        Raises:
            ValueError: a candidate index is not the candidate at that position, or not an Avro int (then
                encode the record, which says what is wrong with it).
        """
        s: int = self.start or 0
        inf, (m, items) = inference
        fb, (f, _) = feedback
        cands = items["candidates"]
        ci, ri = record["chosen_index"], record["rejected_index"]
        if not (0 <= ci < 64 and 0 <= ri < 64 and ci == pref.chosen and ri == pref.rejected):
            raise ValueError("not a candidate index this splicer takes")
        chosen, rejected = cands[ci], cands[ri]
        if inf[s + chosen[0]] != 2 * ci or inf[s + rejected[0]] != 2 * ri:
            raise ValueError("candidates are not in index order")
        return b"".join(
            (
                self.header,
                avro_string(record["pair_id"]),
                avro_string(record["request_id"]),
                avro_string(record["feedback_id"]),
                avro_long(self.kinds.index(record["feedback_kind"])),
                inf[s + m[2] : s + m[6]],  # prompt, prompt_messages, conversation, tools
                inf[s + chosen[1] : s + chosen[2]],
                inf[s + rejected[1] : s + rejected[2]],
                inf[s + chosen[2] : s + chosen[3]],
                inf[s + rejected[2] : s + rejected[3]],
                avro_long(ci),
                avro_long(ri),
                optional_double(record["chosen_score"]),
                optional_double(record["rejected_score"]),
                optional_double(record["margin"]),
                inf[s + m[7] : s + m[8]],  # model
                inf[s + chosen[5] : s + chosen[6]],
                inf[s + rejected[5] : s + rejected[6]],
                inf[s + m[9] : s + m[11]],  # sampling, context
                fb[s + f[9] : s + f[12]],  # source, explicit, rationale
                inf[s + m[1] : s + m[2]],  # inference_time
                fb[s + f[2] : s + f[3]],  # feedback_time
                avro_long(record["join_latency_ms"]),
                source_offset(record["inference_offset"]),
                source_offset(record["feedback_offset"]),
                inf[s + m[11] : s + m[12]],  # inference_metadata
                fb[s + f[12] : s + f[13]],  # feedback_metadata
            )
        )
