"""Send generated traffic through the SDK, paced in real time or as fast as possible."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from .client import PreflogProducer
from .generator import GeneratedEvent

__all__ = ["send_traffic"]


def send_traffic(
    events: Iterable[GeneratedEvent],
    producer: PreflogProducer,
    pace: bool = True,
    stop: threading.Event | None = None,
    on_event: Callable[[GeneratedEvent], None] | None = None,
) -> Counter[str]:
    """Send ``events``; returns counts by what was sent.

    Valid events go through ``log_inference``/``log_feedback``. Invalid ones
    (the generator's share of bad input) skip validation on purpose so
    the processor's dead-letter path sees them.
    """
    topics, codec = producer.topics, producer.codec
    sent: Counter[str] = Counter()
    stop = stop or threading.Event()
    start = time.monotonic()
    for event in events:
        delay = start + event.at - time.monotonic() if pace else 0.0
        if stop.wait(delay) if delay > 0 else stop.is_set():
            break
        if event.event_type == "garbage":
            producer.send(topics.feedback, event.key, event.raw or b"")
            sent["invalid"] += 1
        elif event.invalid_reason and event.record is not None:
            producer.send(topics.feedback, event.key, codec.encode("FeedbackEvent", event.record, topics.feedback))
            sent["invalid"] += 1
        elif event.event_type == "inference":
            producer.log_inference(event.record)
            sent["inference"] += 1
        else:
            producer.log_feedback(event.record)
            sent["feedback"] += 1
        if on_event:
            on_event(event)
    producer.flush()
    return sent
