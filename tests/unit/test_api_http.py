"""The ingestion API's pieces that need no broker: its description, tenants in the SDK, the HTTP refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from preflog.api.app import LiveKeys, make_app
from preflog.api.ingest import Ingest
from preflog.api.keys import KeyFile
from preflog.api.limits import RateLimits
from preflog.api.openapi import describe
from preflog.processors.pairs import tenant_problem
from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.exceptions import ValidationError
from tests.conftest import feedback, inference

ROOT = Path(__file__).parents[2]


@pytest.fixture
def sdk() -> Any:
    producer = PreflogProducer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0}, SingleObjectCodec())  # never sent
    yield producer
    producer.close(timeout=0)


def test_the_committed_description_is_the_one_the_code_makes() -> None:
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == describe(), "regenerate it: python -c 'from preflog.api.openapi import describe; ...'"
    responses = committed["paths"]["/v1/feedback"]["post"]["responses"]
    assert set(responses) == {"202", "400", "401", "403", "413", "422", "429", "503"}
    examples = committed["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert {e["value"]["kind"] for e in examples.values()} == {"PAIRWISE", "RANKING", "SCORES", "RATING", "IMPLICIT"}


def test_every_feedback_example_is_valid_for_the_sdk(sdk: PreflogProducer) -> None:
    body = describe()["paths"]
    sdk.prepare_inference(
        body["/v1/inference"]["post"]["requestBody"]["content"]["application/json"]["examples"]["chat"]["value"]
    )
    for example in body["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["examples"].values():
        sdk.prepare_feedback(example["value"])


def test_the_tenant_is_stamped_and_another_refused(sdk: PreflogProducer) -> None:
    event = inference()
    event["context"].pop("tenant")
    assert sdk.prepare_inference(dict(event), tenant="acme").record["context"]["tenant"] == "acme"
    with pytest.raises(ValidationError) as refused:
        sdk.prepare_inference({**event, "context": {"tenant": "globex"}}, tenant="acme")
    assert refused.value.problems == [
        "context.tenant: this key sends for tenant 'acme', not 'globex'; leave it out, the API stamps it"
    ]
    stamped = sdk.prepare_feedback(feedback(event["request_id"]), tenant="acme")
    decoded = SingleObjectCodec().decode(stamped.value, "FeedbackEvent")
    assert decoded["metadata"]["preflog.tenant"] == "acme"
    with pytest.raises(ValidationError, match=r"keys starting with 'preflog\.'"):
        sdk.prepare_feedback({**feedback(event["request_id"]), "metadata": {"preflog.tenant": "acme"}})


def test_a_tenant_learns_nothing_of_another_s_inference(sdk: PreflogProducer) -> None:
    event = inference()
    event["context"]["tenant"] = "acme"
    sdk.remember_inference(sdk.prepare_inference(event, tenant="acme").record)
    out_of_range = feedback(event["request_id"], pairwise={"chosen": 5, "rejected": 0})
    with pytest.raises(ValidationError, match="candidate 5"):
        sdk.prepare_feedback(dict(out_of_range), tenant="acme")  # its own: checked against the count
    sdk.prepare_feedback(dict(out_of_range), tenant="globex")  # another's: as if unknown (the join decides)


def test_consent_of_a_wrong_type_is_a_validation_error(sdk: PreflogProducer) -> None:
    with pytest.raises(ValidationError, match="consent: expected purposes as a list"):
        sdk.prepare_inference({**inference(), "consent": True})


def test_the_join_refuses_feedback_of_another_tenant() -> None:
    owned = {"context": {"tenant": "acme"}}
    assert tenant_problem(owned, {"metadata": {}}) is None  # the SDK's feedback: not checked
    assert tenant_problem(owned, {"metadata": {"preflog.tenant": "acme"}}) is None
    assert "tenant 'globex'" in (tenant_problem(owned, {"metadata": {"preflog.tenant": "globex"}}) or "")
    assert tenant_problem({"context": {}}, {"metadata": {"preflog.tenant": "acme"}}) is not None


@pytest.fixture
def client(tmp_path: Path, sdk: PreflogProducer) -> Any:
    keys = tmp_path / "keys.json"
    app = make_app(Ingest(sdk, RateLimits(1000, 1000), max_events=3), LiveKeys(keys), max_body_bytes=2048)
    with TestClient(app) as c:
        c.keys = KeyFile.load(keys)
        yield c


def test_refusals_before_kafka(client: Any) -> None:
    key, _ = client.keys.create("acme", ("inference", "feedback"))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/v1/inference", json={}).status_code == 401
    assert client.post("/v1/inference", content=b"[]", headers=auth).status_code == 400
    assert client.post("/v1/inference", content=b"\xff", headers=auth).status_code == 400
    assert client.post("/v1/inference", content=b"x" * 3000, headers=auth).status_code == 413
    assert client.post("/v1/inference", json=[{}] * 4, headers=auth).status_code == 413
    invalid = client.post("/v1/inference", json=[{}, 7], headers=auth)
    assert invalid.status_code == 422
    assert [e["index"] for e in invalid.json()["events"]] == [0, 1]
    assert invalid.json()["events"][1]["errors"] == ["event: expected a mapping of fields, got int"]


def test_a_browser_key_works_from_its_origin_only_and_sees_retry_after(client: Any) -> None:
    public, _ = client.keys.create("acme", ("feedback",), public=True, origins=("https://a.example",))
    auth = {"Authorization": f"Bearer {public}"}
    from_a = client.post("/v1/feedback", json={}, headers={**auth, "Origin": "https://a.example"})
    assert from_a.status_code == 422  # past the key: the empty event is invalid
    assert from_a.headers["access-control-allow-origin"] == "https://a.example"
    assert from_a.headers["access-control-expose-headers"] == "Retry-After"
    from_b = client.post("/v1/feedback", json={}, headers={**auth, "Origin": "https://b.example"})
    assert from_b.status_code == 403 and "access-control-allow-origin" not in from_b.headers
    assert client.post("/v1/feedback", json={}, headers=auth).status_code == 403  # a browser key needs its origin
    secret, _ = client.keys.create("acme", ("feedback",))
    leaked = client.post(
        "/v1/feedback", json={}, headers={"Authorization": f"Bearer {secret}", "Origin": "https://a.example"}
    )
    assert leaked.status_code == 403 and "revoke it" in leaked.json()["error"]
    snippet = client.get("/preflog-feedback.js")
    assert snippet.status_code == 200 and "PreflogFeedback" in snippet.text


def test_an_inference_sealed_twice_has_one_resealed_digest(tmp_path: Path) -> None:
    from preflog.privacy.dev import make_dev
    from preflog.processors.pairs import resealed_digest
    from preflog.settings import load_settings

    conf, _ = make_dev(tmp_path)
    settings = load_settings({"privacy": conf, "kafka": {"bootstrap_servers": "127.0.0.1:1"}})
    event = {**inference(), "context": {"user_id": "u-1"}}
    records = []
    for _ in range(2):  # two producers: two data keys, other nonces
        with PreflogProducer.from_settings(settings) as producer:
            value = producer.prepare_inference(dict(event)).value
            records.append(SingleObjectCodec().decode(value, "InferenceEvent"))
    assert records[0]["prompt"] != records[1]["prompt"]
    assert records[0]["metadata"]["preflog.key"] != records[1]["metadata"]["preflog.key"]
    assert resealed_digest(records[0]) == resealed_digest(records[1]) is not None
    other = {**records[1], "model": {**records[1]["model"], "version": "other"}}
    assert resealed_digest(other) != resealed_digest(records[0])
    assert resealed_digest(inference()) is None  # not sealed: the join compares bytes


def _ingest(sdk: PreflogProducer, **kw: Any) -> tuple[Ingest, Any]:
    from preflog.api.keys import ApiKey

    key = ApiKey(id="0" * 16, tenant="acme", scopes=("inference", "feedback"), secret_sha256="", created_ms=0)
    return Ingest(sdk, RateLimits(1e6, 10**6), **kw), key


def _events(n: int) -> list[dict[str, Any]]:
    return [{**inference(), "context": {}} for _ in range(n)]


def test_requests_waiting_for_the_worker_count_toward_max_in_flight(sdk: PreflogProducer) -> None:
    """Nothing is acknowledged (no broker): 2 x 5 events fill max_in_flight 10; the third request is refused at once."""
    import asyncio

    ingest, key = _ingest(sdk, max_in_flight=10, ack_timeout_s=0.5)

    async def three() -> list[Any]:
        return list(await asyncio.gather(*(ingest.submit(key, "InferenceEvent", _events(5)) for _ in range(3))))

    answers = asyncio.run(three())
    assert sorted(a.status for a in answers) == [503, 503, 503]
    refused = [a for a in answers if "not keeping up" in a.body["error"]]
    assert len(refused) == 1 and "acknowledged" not in refused[0].body  # nothing of it was sent
    waited = [a for a in answers if a not in refused]
    assert all(len(a.body["unacknowledged"]) == 5 and a.body["acknowledged"] == [] for a in waited)
    ingest.close()


def test_a_job_stuck_on_the_worker_makes_new_requests_503_at_once(sdk: PreflogProducer) -> None:
    import asyncio
    import time

    ingest, key = _ingest(sdk, ack_timeout_s=0.3)
    real = sdk.prepare_inference

    def slow(event: Any, tenant: str | None = None) -> Any:
        time.sleep(1.0)  # as a new data key waiting for an absent keys topic would
        return real(event, tenant=tenant)

    sdk.prepare_inference = slow  # type: ignore[method-assign]

    async def run() -> tuple[Any, Any, float]:
        stuck = asyncio.create_task(ingest.submit(key, "InferenceEvent", _events(1)))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        second = await ingest.submit(key, "InferenceEvent", _events(1))
        took = time.monotonic() - started
        return await stuck, second, took

    _, second, took = asyncio.run(run())
    assert second.status == 503 and "has not acknowledged records" in second.body["error"]
    assert took < 0.2
    ingest.close()


def test_hostile_bodies_are_4xx_not_500(client: Any) -> None:
    key, _ = client.keys.create("acme", ("inference", "feedback"))
    auth = {"Authorization": f"Bearer {key}"}
    nested = client.post("/v1/inference", content=b"[" * 1000 + b"]" * 1000, headers=auth)
    assert nested.status_code in (400, 413)
    deep = client.post("/v1/inference", content=b"[" * 100_000, headers={**auth, "Content-Length": "100000"})
    assert deep.status_code == 413  # over max_body_bytes (2048) before parsing
    surrogate = client.post("/v1/inference", content=b'{"request_id": "abc\\ud800"}', headers=auth)
    assert surrogate.status_code == 422 and "abc" in surrogate.text


def test_a_key_over_its_rate_is_refused_before_its_body_is_read(tmp_path: Path, sdk: PreflogProducer) -> None:
    keys = tmp_path / "keys.json"
    ingest = Ingest(sdk, RateLimits(0.001, 1), max_events=3, ack_timeout_s=0.2)
    app = make_app(ingest, LiveKeys(keys), max_body_bytes=2048)
    key, _ = KeyFile.load(keys).create("acme", ("inference",))
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        assert c.post("/v1/inference", json={}, headers=auth).status_code == 422  # nothing sent: token given back
        sent = c.post("/v1/inference", content=json.dumps({**inference(), "context": {}}, default=str), headers=auth)
        assert sent.status_code == 503 and len(sent.json()["unacknowledged"]) == 1  # sent (no broker): spent
        flood = c.post("/v1/inference", content=b"x" * 4000, headers=auth)  # would be a 413 if it were read
        assert flood.status_code == 429 and int(flood.headers["Retry-After"]) >= 1
