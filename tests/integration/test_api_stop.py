"""``preflog serve`` stopped by SIGTERM or SIGINT: a graceful stop, its cleanup, exit code 0.

uvicorn (>= 0.29) raises the signal it caught again once it has shut down; with the default handler
in place that ended the process by the signal (exit 143 for SIGTERM) before ``preflog serve`` closed
its producer.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

import pytest

from preflog.api.sender import as_json
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings
from tests.conftest import inference
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_api_after_its_cleanup_with_exit_code_0(
    sig: signal.Signals, start_api: Any, kafka_config: dict[str, Any], topics: TopicSettings
) -> None:
    api = start_api()
    event = inference()
    event["context"].pop("tenant")
    answer = api.post("/v1/inference", as_json(event), api.key("acme"))
    assert answer.status_code == 202, answer.text

    proc = api.worker.proc
    proc.send_signal(sig)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        api.worker.kill()
        said = api.worker.output()[-3000:]
        raise AssertionError(f"preflog serve still running 30 s after {sig.name}:\n{said}") from None

    said = api.worker.output()
    assert code == 0, f"preflog serve exited {code} on {sig.name}:\n{said[-3000:]}"
    assert "Finished server process" in said, said[-3000:]  # uvicorn's graceful shutdown
    assert "preflog API stopped; producer closed (0 records undelivered)" in said, said[-3000:]  # serve's cleanup
    sent = read_topic(kafka_config, topics.inference, 3, 1)
    records = [SingleObjectCodec().decode(m.value() or b"", "InferenceEvent", topics.inference) for m in sent]
    assert [r["request_id"] for r in records] == [event["request_id"]]
