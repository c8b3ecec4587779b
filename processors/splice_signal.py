"""UnpairedSignal bytes assembled from the encoded fields of its inference and feedback.

As :mod:`preflog.processors.splice` does for pairs: the fields a signal shares
with its inputs (prompt, the judged candidate's text, messages and model,
model, sampling, context, source, explicit, times) are copied from the
inputs' values when the codec's fast path decoded them; the ids, the index,
the judgement's label, value and signal (or scale) and the offsets are
encoded here from the record. The result is byte for byte what encoding the
signal record gives (tested against fastavro).
"""

from __future__ import annotations

from typing import Any

from preflog.schemas.codec import Codec
from preflog.schemas.fast_reader import Marks

from .splice import Splicer, avro_long, avro_string, optional_double, source_offset

__all__ = ["SignalSplicer"]

Record = dict[str, Any]
SIGNAL: tuple[str, ...] = ("signal_id", "request_id", "feedback_id", "feedback_kind", "prompt", "prompt_messages")
SIGNAL += ("conversation", "tools")
SIGNAL += ("completion", "completion_messages", "completion_index", "label", "value", "signal", "model")
SIGNAL += ("completion_model", "sampling", "context", "source", "explicit", "inference_time", "feedback_time")
SIGNAL += ("inference_offset", "feedback_offset")
#: output field -> (input, field) whose encoding it copies ("candidate": the judged one)
COPIED = {
    "prompt": ("inference", "prompt"),
    "prompt_messages": ("inference", "prompt_messages"),
    "conversation": ("inference", "conversation"),
    "tools": ("inference", "tools"),
    "completion": ("candidate", "text"),
    "completion_messages": ("candidate", "messages"),
    "model": ("inference", "model"),
    "completion_model": ("candidate", "model"),
    "sampling": ("inference", "sampling"),
    "context": ("inference", "context"),
    "source": ("feedback", "source"),
    "explicit": ("feedback", "explicit"),
    "inference_time": ("inference", "event_time"),
    "feedback_time": ("feedback", "event_time"),
}
#: the types of the fields encoded here
OWN = {
    "signal_id": "string",
    "request_id": "string",
    "feedback_id": "string",
    "completion_index": "int",
    "label": "boolean",
    "value": ("union", ("null", "double")),
    "signal": ("union", ("null", "string")),
    "inference_offset": ("record", (("topic", "string"), ("partition", "int"), ("offset", "long"))),
    "feedback_offset": ("record", (("topic", "string"), ("partition", "int"), ("offset", "long"))),
}


class SignalSplicer(Splicer):
    """Encodes UnpairedSignals from their inputs' bytes; ``usable`` is False when the schemas do not line up.

    Args:
        codec: the input codec (its ``header_size``: where a value's body starts).
        output_codec: the codec of the outputs (its ``header`` gives the framing of an UnpairedSignal).
        topic: the unpaired topic.
    """

    fields, copied, own = SIGNAL, COPIED, OWN

    def __init__(self, codec: Codec, output_codec: Codec, topic: str) -> None:
        super().__init__(codec, output_codec, "UnpairedSignal", topic)

    def signal(self, record: Record, inference: tuple[bytes, Marks], feedback: tuple[bytes, Marks]) -> bytes:
        """The encoded UnpairedSignal ``record``, from the inputs' (value, marks).

        Every value not copied from the inputs is taken from ``record``, so the bytes are the record's.

        Raises:
            ValueError: the judged index is not the candidate at that position, or a value is not of its
                type (then encode the record, which says what is wrong with it).
        """
        s: int = self.start or 0
        inf, (m, items) = inference
        fb, (f, _) = feedback
        index, label, value, text = record["completion_index"], record["label"], record["value"], record["signal"]
        if not (0 <= index < 64 and isinstance(label, bool) and (text is None or isinstance(text, str))):
            raise ValueError("not a signal this splicer takes")
        cand = items["candidates"][index]
        if inf[s + cand[0]] != 2 * index:
            raise ValueError("candidates are not in index order")
        return b"".join(
            (
                self.header,
                avro_string(record["signal_id"]),
                avro_string(record["request_id"]),
                avro_string(record["feedback_id"]),
                avro_long(self.kinds.index(record["feedback_kind"])),
                inf[s + m[2] : s + m[6]],  # prompt, prompt_messages, conversation, tools
                inf[s + cand[1] : s + cand[3]],  # completion, completion_messages
                avro_long(index),
                b"\x01" if label else b"\x00",
                optional_double(value),
                b"\x00" if text is None else b"\x02" + avro_string(text),
                inf[s + m[7] : s + m[8]],  # model
                inf[s + cand[5] : s + cand[6]],  # completion_model
                inf[s + m[9] : s + m[11]],  # sampling, context
                fb[s + f[9] : s + f[11]],  # source, explicit
                inf[s + m[1] : s + m[2]],  # inference_time
                fb[s + f[2] : s + f[3]],  # feedback_time
                source_offset(record["inference_offset"]),
                source_offset(record["feedback_offset"]),
            )
        )
