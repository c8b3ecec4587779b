"""An offline producer for the SDK's input tests: no broker, and a spy that keeps what would be sent."""

from __future__ import annotations

from typing import Any

from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec

__all__ = ["INF", "NAN", "REWARD_MODEL", "RID", "Spy", "offline_producer", "scores", "sent"]

RID = "0b0f6c1e-52a4-4cbb-8f0f-3f4b8f6f9d11"
NAN, INF = float("nan"), float("inf")
REWARD_MODEL = {"type": "REWARD_MODEL", "name": "rm", "version": "1"}


def scores(*values: Any) -> dict[str, Any]:
    """A valid SCORES judgement by a reward model, one score per candidate in order."""
    return {
        "kind": "SCORES",
        "pairwise": None,
        "scores": [{"index": i, "score": v} for i, v in enumerate(values)],
        "source": REWARD_MODEL,
    }


class Spy:
    """Stands between PreflogProducer and its Kafka client and keeps every record handed to produce()."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.produced: list[bytes] = []

    def produce(self, topic: str, value: bytes, **kwargs: Any) -> None:
        self.produced.append(value)
        self.client.produce(topic, value=value, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def offline_producer(**config: Any) -> PreflogProducer:
    """A producer whose broker does not exist (records only queue locally), with a Spy on its client."""
    codec = config.pop("codec", None) or SingleObjectCodec()
    producer = PreflogProducer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0, **config}, codec)
    producer._producer = Spy(producer._producer)  # type: ignore[assignment]
    return producer


def sent(producer: PreflogProducer) -> list[bytes]:
    """Every value ``producer`` (made by :func:`offline_producer`) handed to its Kafka client."""
    spy = producer._producer
    assert isinstance(spy, Spy)
    return spy.produced
