"""``preflog serve`` against the real broker: what it accepts reaches Kafka, what it refuses does not.

Each test starts the service as a subprocess on the test's own topics and reads the topics back
with a plain consumer, so what is counted never passes through the code under test.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from preflog.api.sender import as_json
from preflog.deploy.broker import EmbeddedBroker
from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.exceptions import ValidationError
from preflog.settings import TopicSettings
from tests.conftest import feedback, inference
from tests.kafka_helpers import read_topic

from .api_helpers import start_api as launch_api

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


def _records(kafka_config: dict[str, Any], topic: str, record_type: str, expect: int, **kw: Any) -> list[dict]:
    messages = read_topic(kafka_config, topic, 3, expect, **kw)
    return [CODEC.decode(m.value() or b"", record_type, topic) for m in messages]


def test_events_sent_over_http_reach_kafka_with_the_key_s_tenant_and_join(
    start_api: Any, start_processor: Any, kafka_config: dict[str, Any], topics: TopicSettings
) -> None:
    api = start_api()
    key = api.key("acme")
    start_processor()
    batch = [inference(), inference()]
    for event in batch:
        event["context"].pop("tenant")
    answer = api.post("/v1/inference", as_json(batch), key)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 2, "ids": [e["request_id"] for e in batch]}
    judged = feedback(batch[0]["request_id"], pairwise={"chosen": 2, "rejected": 0})
    answer = api.post("/v1/feedback", as_json(judged), key)  # one event, not a list
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "ids": [judged["feedback_id"]]}

    sent = _records(kafka_config, topics.inference, "InferenceEvent", 2)
    assert sorted(r["request_id"] for r in sent) == sorted(e["request_id"] for e in batch)
    assert {r["context"]["tenant"] for r in sent} == {"acme"}
    fb = _records(kafka_config, topics.feedback, "FeedbackEvent", 1)
    assert [r["metadata"].get("preflog.tenant") for r in fb] == ["acme"]
    pairs = _records(kafka_config, topics.pairs, "PreferencePair", 1, timeout=60)
    assert [(p["request_id"], p["chosen"], p["rejected"], p["context"]["tenant"]) for p in pairs] == [
        (batch[0]["request_id"], "11", "7", "acme")
    ]


def test_one_invalid_event_refuses_the_batch_with_the_sdk_s_own_texts(
    start_api: Any, kafka_config: dict[str, Any], topics: TopicSettings
) -> None:
    api = start_api()
    key = api.key("acme")
    good = inference()
    good["context"].pop("tenant")
    bad = inference(candidates=["only one"], prompt="")
    bad["context"].pop("tenant")
    answer = api.post("/v1/inference", as_json([good, bad, good]), key)
    assert answer.status_code == 422
    body = answer.json()
    assert "nothing was sent" in body["error"]
    with PreflogProducer(kafka_config, CODEC, topics) as sdk, pytest.raises(ValidationError) as sdk_error:
        sdk.prepare_inference(as_json(bad))
    assert body["events"] == [{"index": 1, "id": bad["request_id"], "errors": sdk_error.value.problems}]
    assert read_topic(kafka_config, topics.inference, 3, 1, timeout=3) == []  # not even the valid ones


def test_a_key_sends_only_for_its_tenant(
    start_api: Any, start_processor: Any, kafka_config: dict[str, Any], topics: TopicSettings
) -> None:
    api = start_api()
    acme, globex = api.key("acme"), api.key("globex")
    start_processor()
    claimed = inference()  # says tenant acme in its body
    answer = api.post("/v1/inference", as_json(claimed), globex)
    assert answer.status_code == 422
    assert answer.json()["events"][0]["errors"] == [
        "context.tenant: this key sends for tenant 'globex', not 'acme'; leave it out, the API stamps it"
    ]
    assert api.post("/v1/inference", as_json(claimed), acme).status_code == 202
    foreign = feedback(claimed["request_id"])
    assert api.post("/v1/feedback", as_json(foreign), globex).status_code == 202  # the API cannot know the owner
    own = feedback(claimed["request_id"], pairwise={"chosen": 2, "rejected": 1})
    assert api.post("/v1/feedback", as_json(own), acme).status_code == 202

    dead = _records(kafka_config, topics.dead_letter, "DeadLetter", 1, timeout=60)
    assert [(d["error_class"], d["key"]) for d in dead] == [("TenantMismatch", claimed["request_id"].encode())]
    assert "tenant 'globex'" in dead[0]["reason"] and "tenant 'acme'" in dead[0]["reason"]
    pairs = _records(kafka_config, topics.pairs, "PreferencePair", 1, timeout=30)
    assert [(p["feedback_id"], p["context"]["tenant"]) for p in pairs] == [(own["feedback_id"], "acme")]


def test_keys_are_checked_at_every_request_and_never_logged(start_api: Any) -> None:
    api = start_api()
    key = api.key("acme")
    feedback_only = api.key("acme", ("feedback",))
    event = inference()
    event["context"].pop("tenant")
    assert api.post("/v1/inference", as_json(event), None).status_code == 401
    assert api.post("/v1/inference", as_json(event), "pfk_nonsense").status_code == 401
    refused = api.post("/v1/inference", as_json(event), feedback_only)
    assert refused.status_code == 403 and "may not send inference" in refused.json()["error"]
    assert api.post("/v1/inference", as_json(event), key).status_code == 202
    keys = api.keys
    key_id = key.split("_")[1]
    keys.revoke(key_id)  # while the service runs: it reads the key file again
    answer = api.post("/v1/inference", as_json(inference(request_id=str(uuid.uuid4()))), key)
    assert answer.status_code == 401 and answer.json() == {"error": f"API key {key_id} was revoked"}
    secret_in_browser = api.post("/v1/inference", as_json(event), feedback_only, Origin="https://evil.example")
    assert secret_in_browser.status_code == 403
    api.worker.stop()
    logged = api.worker.output()
    for text in (key, feedback_only):
        assert text.split("_")[2] not in logged


def test_limits_answer_413_and_429_with_retry_after(start_api: Any) -> None:
    api = start_api(max_body_bytes=4096, max_events=5, rate=1.0, burst=8)
    key = api.key("acme")
    big = inference(prompt="x" * 5000)
    big["context"].pop("tenant")
    answer = api.post("/v1/inference", as_json(big), key)
    assert answer.status_code == 413 and "api.max_body_bytes" in answer.json()["error"]
    many = [{"request_id": str(uuid.uuid4())} for _ in range(6)]
    answer = api.post("/v1/inference", many, key)
    assert answer.status_code == 413 and "api.max_events" in answer.json()["error"]
    statuses = []
    for _ in range(3):  # 3 x 4 events against a burst of 8 at 1 event/s: the third is over
        events = [as_json({**inference(), "context": {}}) for _ in range(4)]
        statuses.append(api.post("/v1/inference", events, key))
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert int(statuses[2].headers["Retry-After"]) >= 1
    other = api.key("globex")  # the limit is per key
    assert api.post("/v1/inference", as_json({**inference(), "context": {}}), other).status_code == 202


def test_cors_preflight_answers_only_the_origins_of_public_keys(start_api: Any) -> None:
    api = start_api()
    api.key("acme", ("feedback",), public=True, origins=("https://chat.acme.example",))
    ask = {"Origin": "https://chat.acme.example", "Access-Control-Request-Method": "POST"}
    allowed = httpx.options(f"{api.url}/v1/feedback", headers=ask)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://chat.acme.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    other = httpx.options(f"{api.url}/v1/feedback", headers={**ask, "Origin": "https://evil.example"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    inference_route = httpx.options(f"{api.url}/v1/inference", headers=ask)
    assert inference_route.status_code == 403


def test_every_documented_status_is_reached_and_kafka_gone_answers_503_fast(tmp_path: Path) -> None:
    """Each status the description documents, on purpose; then the broker killed under the service.

    503 comes within the ack timeout, then at once (nothing more is queued); what was 202'd is on the topic.
    """
    from preflog.kafka.topics import ensure_topics

    documented = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    expected = {int(s) for s in documented["paths"]["/v1/inference"]["post"]["responses"]}
    with EmbeddedBroker(tmp_path / "broker") as broker:
        config = {"bootstrap.servers": broker.bootstrap_servers}
        topics = TopicSettings(partitions=3)
        ensure_topics(config, topics.all().values(), topics.partitions)
        settings: dict[str, Any] = {"ack_timeout_s": 1.5, "max_body_bytes": 64 * 1024, "rate": 1.0, "burst": 20}
        api = launch_api(broker.bootstrap_servers, topics.all(), tmp_path / "api", tmp_path / "api.log", **settings)
        seen: dict[int, httpx.Response] = {}

        def event() -> dict[str, Any]:
            return as_json({**inference(), "context": {}})

        try:
            key = api.key("acme")
            before = [event() for _ in range(3)]
            for answer in (
                api.post("/v1/inference", before, key),
                httpx.post(f"{api.url}/v1/inference", content=b"{", headers={"Authorization": f"Bearer {key}"}),
                api.post("/v1/inference", event(), None),
                api.post("/v1/inference", event(), api.key("acme", ("feedback",))),
                api.post("/v1/inference", as_json({**inference(prompt="x" * 70_000), "context": {}}), key),
                api.post("/v1/inference", {"request_id": "not a uuid"}, key),
                api.post("/v1/inference", [event() for _ in range(20)], key),  # 3 + 20 > a burst of 20
            ):
                seen.setdefault(answer.status_code, answer)
            kept = read_topic(config, topics.inference, 3, 3)
            assert sorted((m.key() or b"").decode() for m in kept) == sorted(e["request_id"] for e in before)
            assert httpx.get(f"{api.url}/readyz").json() == {"status": "ok", "reason": "accepting events"}
            broker.kill()
            other = api.key("globex")
            started = time.monotonic()
            answer = api.post("/v1/inference", [event()], other)
            waited = time.monotonic() - started
            seen.setdefault(answer.status_code, answer)
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
            assert answer.json()["acknowledged"] == [] and len(answer.json()["unacknowledged"]) == 1
            assert waited < 5
            started = time.monotonic()
            again = api.post("/v1/inference", [event()], other)
            assert again.status_code == 503 and "has not acknowledged records" in again.json()["error"]
            assert time.monotonic() - started < 1.0  # refused at once: nothing more is queued
            assert httpx.get(f"{api.url}/healthz").json()["waiting_for_kafka_s"] > 1.0
            deadline = time.monotonic() + 15  # not ready once records have waited longer than the ack timeout
            while (ready := httpx.get(f"{api.url}/readyz")).status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert ready.status_code == 503 and ready.json()["reason"].startswith("Kafka has kept records waiting")
        finally:
            api.worker.stop()
    assert set(seen) == expected, {s: r.text[:200] for s, r in seen.items()}
    assert all("error" in r.json() for s, r in seen.items() if s != 202)


def test_openapi_is_served_and_is_the_committed_one(start_api: Any) -> None:
    api = start_api()
    served = httpx.get(f"{api.url}/openapi.json").json()
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert served == committed


def test_events_over_http_are_redacted_pseudonymised_and_sealed_as_the_sdk_does(
    start_api: Any, kafka_config: dict[str, Any], topics: TopicSettings, tmp_path: Path
) -> None:
    from preflog.privacy.dev import make_dev
    from preflog.privacy.keyring import Keyring
    from preflog.settings import load_settings

    conf, _ = make_dev(tmp_path / "privacy-home")
    api = start_api(privacy={**conf, "redact": ["email"]})
    key = api.key("acme")
    event = inference(prompt="Write to bob.marker@example.com about the refund.", prompt_messages=None)
    event["context"] = {"user_id": "alice-marker", "session_id": "s-9"}
    answer = api.post("/v1/inference", as_json({**event, "consent": ["training"]}), key)
    assert answer.status_code == 202, answer.text
    [message] = read_topic(kafka_config, topics.inference, 3, 1)
    raw = message.value() or b""
    for marker in (b"bob.marker", b"alice-marker", b"refund"):
        assert marker not in raw  # nothing personal in plain text on the topic
    record = CODEC.decode(raw, "InferenceEvent", topics.inference)
    assert record["prompt"].startswith("pf1:")
    assert record["context"]["user_id"].startswith("psn_") and record["context"]["tenant"] == "acme"
    assert record["metadata"]["preflog.consent"] == "training"
    keyring = Keyring.load(load_settings({"privacy": conf}))
    opened = keyring.open(record["prompt"]) or ""
    assert "bob.marker@example.com" not in opened and "about the refund" in opened  # redacted, then sealed


def test_a_retried_sealed_inference_is_a_duplicate_not_a_conflict(
    start_api: Any, start_processor: Any, kafka_config: dict[str, Any], topics: TopicSettings, tmp_path: Path
) -> None:
    """Privacy on: a retry through another API process seals the same inference again.

    New nonces, a new data key: the join keeps one and pairs it once, instead of dead-lettering the retry
    as ConflictingInference.
    """
    from preflog.privacy.dev import make_dev

    conf, _ = make_dev(tmp_path / "privacy-home")
    first = start_api(tmp_path / "api", privacy=conf)
    key = first.key("acme")
    start_processor()
    event = inference()
    event["context"] = {"user_id": "u-7"}
    assert first.post("/v1/inference", as_json(event), key).status_code == 202
    first.worker.stop()
    second = start_api(tmp_path / "api", privacy=conf)  # the client's retry reaches another process
    assert second.post("/v1/inference", as_json(event), key).status_code == 202
    assert second.post("/v1/feedback", as_json(feedback(event["request_id"])), key).status_code == 202
    sent = read_topic(kafka_config, topics.inference, 3, 2)
    assert len(sent) == 2 and sent[0].value() != sent[1].value()  # sealed twice: other bytes
    pairs = _records(kafka_config, topics.pairs, "PreferencePair", 1, timeout=60, settle=3.0)
    assert [p["request_id"] for p in pairs] == [event["request_id"]]
    assert read_topic(kafka_config, topics.dead_letter, 3, 1, timeout=2) == []
