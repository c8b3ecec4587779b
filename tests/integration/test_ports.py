"""Ports taken by someone else: the broker and the stack pick others, never failing or taking them for their own."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflog.deploy import broker as broker_module

from .lifecycle_helpers import wait_gone

pytestmark = pytest.mark.integration


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port with a listener on it for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_broker_retries_when_its_port_is_taken_before_it_binds(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([occupied_port])
    real = broker_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or real())
    with broker_module.EmbeddedBroker(tmp_path / "broker") as b:
        assert b.port != occupied_port
        assert b.process is not None and b.process.poll() is None
    assert "Address in use" in (tmp_path / "broker" / "broker.log").read_text()


def test_broker_does_not_mistake_another_broker_on_its_port_for_itself(
    tmp_path: Path, broker: broker_module.EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([broker.port])  # the session's broker already listens there
    real = broker_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or real())
    with broker_module.EmbeddedBroker(tmp_path / "broker") as b:
        assert b.port != broker.port
        assert b.process is not None and b.process.poll() is None


def test_stack_comes_up_when_the_ports_it_would_pick_are_taken(
    tmp_path: Path, occupied_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the parent picked the metrics ports, released them, and a child found one taken and died."""
    from preflog.deploy import stack as stack_module
    from preflog.settings import Settings

    picks = iter([occupied_port] * 3)
    real = broker_module.free_port
    pick = lambda: next(picks, None) or real()  # noqa: E731
    monkeypatch.setattr(broker_module, "free_port", pick)
    monkeypatch.setattr(stack_module, "free_port", pick, raising=False)
    for name in [k for k in os.environ if k.startswith("PREFLOG_")]:
        monkeypatch.delenv(name)
    stack = stack_module.Stack(Settings(data_dir=tmp_path / "data"))
    try:
        stack.start()
        stack.start_processor()
        stack.start_sink()
        stack.wait(8)  # raises if a service died
        stack.publish_metrics(30)
        assert stack.record is not None and set(stack.record.metrics) == {"processor", "sink"}
        for url in stack.record.metrics.values():
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
        stored = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert stored["metrics"] == stack.record.metrics
    finally:
        stack.stop()
    assert wait_gone(stack.pids(), 5) == {}
