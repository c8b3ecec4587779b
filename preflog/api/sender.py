"""Generated traffic over HTTP: what ``preflog up --demo --via api`` sends through ``preflog serve``.

An :class:`ApiSender` stands where :func:`preflog.producers.traffic.send_traffic` expects the SDK's
producer: valid events are POSTed one per request (retried with the same ids on 429 and 503, after
``Retry-After``, as a client should), and the generator's deliberately broken records, which the API
would refuse by design, go raw to Kafka through ``raw`` so the processor's dead-letter path still sees them.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import httpx

from preflog.producers.client import PreflogProducer

__all__ = ["ApiSender", "as_json"]


def as_json(value: Any) -> Any:
    """``value`` as JSON carries it: dates and times as ISO-8601 text, other values (UUIDs) as text.

    Raises:
        TypeError: ``value`` holds bytes, which JSON cannot carry.
    """
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise TypeError("an event holds bytes: JSON cannot carry them")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class ApiSender:
    """Posts events to the ingestion API at ``url`` with ``key``."""

    def __init__(self, url: str, key: str, raw: PreflogProducer, retries: int = 5) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
        self.raw = raw
        self.topics, self.codec = raw.topics, raw.codec
        self.retries = retries
        self.answers: dict[int, int] = {}  # HTTP status -> count

    def _post(self, route: str, event: Any) -> None:
        body = as_json(event)
        for _ in range(self.retries + 1):
            answer = self.client.post(route, json=body)
            self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
            if answer.status_code == 202:
                return
            if answer.status_code not in (429, 503):
                raise RuntimeError(f"{route}: {answer.status_code} {answer.json().get('error', '')}")
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        raise RuntimeError(f"{route}: still {answer.status_code} after {self.retries} retries")

    def log_inference(self, event: Any) -> None:
        context = {k: v for k, v in (event.get("context") or {}).items() if k != "tenant"}  # the key's tenant is used
        self._post("/v1/inference", {**event, "context": context})

    def log_feedback(self, event: Any) -> None:
        self._post("/v1/feedback", event)

    def send(self, topic: str, key: str | bytes | None, value: bytes) -> Any:
        return self.raw.send(topic, key, value)

    def flush(self, timeout: float = 30.0) -> int:
        return self.raw.flush(timeout)

    def close(self) -> None:
        self.client.close()
        self.raw.close()
