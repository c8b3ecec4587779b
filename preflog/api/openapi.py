"""The ingestion API's OpenAPI description, made from the event schemas in ``schemas/avro``.

The request bodies are the Avro schemas turned into JSON Schema, widened where the SDK is lenient (a
candidate or a model given as bare text, an ISO-8601 or epoch-millisecond ``event_time`` that defaults to
now, fields the SDK fills in left optional): one contract, described once. The SDK's validation is what
the service applies; this description is what a client generator and Schemathesis read. The committed
copy is ``docs/openapi.json`` (a test keeps it equal to :func:`describe`).
"""

from __future__ import annotations

from typing import Any

from preflog.schemas.references import FEEDBACK_KINDS
from preflog.schemas.registry import default_store

__all__ = ["describe", "json_schema"]

Schema = dict[str, Any]
#: fields the SDK fills in or derives, so a client may leave them out
OPTIONAL = {
    "InferenceEvent": {"event_time", "prompt", "sampling", "context"},
    "FeedbackEvent": {"event_time", "explicit"},
    "Candidate": {"index"},
}
PRIVACY: dict[str, Schema] = {
    "subject": {"type": "string", "minLength": 1, "description": "The person the event is about (privacy: sealed)."},
    "consent": {
        "description": "Purposes the subject allows: training, analytics (a list, or comma-separated).",
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string", "enum": ["training", "analytics"]}},
        ],
    },
    "retention_days": {"type": "number", "exclusiveMinimum": 0, "maximum": 36500, "description": "Keep this long."},
}
TIME: Schema = {
    "description": "When it happened: ISO-8601 with a zone, or UTC milliseconds since the epoch; default now.",
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}],
}


def json_schema(avro: Any, named: dict[str, Schema], owner: str = "") -> Schema:
    """The JSON Schema of Avro type ``avro``; named records go to ``named`` (components) and are referenced."""
    if isinstance(avro, str):
        primitive: dict[str, Schema] = {
            "string": {"type": "string"}, "boolean": {"type": "boolean"}, "double": {"type": "number"},
            "float": {"type": "number"}, "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            "long": {"type": "integer"}, "null": {"type": "null"},
        }  # fmt: skip
        if avro in primitive:
            return dict(primitive[avro])
        return {"$ref": f"#/components/schemas/{avro.split('.')[-1]}"}
    if isinstance(avro, list):
        kinds = [json_schema(t, named, owner) for t in avro if t != "null"]
        one = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        return {"anyOf": [one, {"type": "null"}]} if "null" in avro else one
    kind = avro["type"]
    if avro.get("logicalType") == "uuid":
        return {"type": "string", "format": "uuid"}
    if avro.get("logicalType") == "timestamp-millis":
        return dict(TIME)
    if kind == "array":
        return {"type": "array", "items": json_schema(avro["items"], named, owner)}
    if kind == "map":
        return {"type": "object", "additionalProperties": json_schema(avro["values"], named, owner)}
    if kind == "enum":
        return {"type": "string", "enum": list(avro["symbols"]), "description": avro.get("doc", "")}
    if kind == "record":
        name = avro["name"]
        if name not in named:
            named[name] = {}  # placeholder against recursion
            named[name] = _record(avro, named)
        return {"$ref": f"#/components/schemas/{name}"}
    return json_schema(kind, named, owner)


def _record(avro: Schema, named: dict[str, Schema]) -> Schema:
    name = avro["name"]
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for field in avro["fields"]:
        schema = json_schema(field["type"], named, name)
        if field.get("doc"):
            doc = field["doc"]
            if schema.get("description") == TIME["description"]:
                doc = f"{doc} Given as ISO-8601 with a zone, or epoch milliseconds; default now."
            schema = {**schema, "description": doc}  # OpenAPI 3.1: a description beside $ref is fine
        properties[field["name"]] = schema
        if "default" not in field and field["name"] not in OPTIONAL.get(name, ()):
            required.append(field["name"])
    out: Schema = {"type": "object", "description": avro.get("doc", ""), "properties": properties}
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _events(named: dict[str, Schema]) -> None:
    """The two event types, with the SDK's conveniences and the privacy fields."""
    for record_type in ("InferenceEvent", "FeedbackEvent"):
        json_schema(default_store().latest(record_type).raw, named)
        props = named[record_type]["properties"]
        props.update({k: {"anyOf": [v, {"type": "null"}], "description": v["description"]} for k, v in PRIVACY.items()})
    inference = named["InferenceEvent"]["properties"]
    inference["candidates"] = {
        "type": "array", "minItems": 2,
        "description": "The outputs, in the order shown: text, or objects with text (index defaults to position).",
        "items": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/Candidate"}]},
    }  # fmt: skip
    inference["model"] = {
        "anyOf": [{"type": "string", "minLength": 1}, {"$ref": "#/components/schemas/Model"}],
        "description": "The model that served the request: its name, or an object with name, version, checkpoint_hash.",
    }
    named["InferenceEvent"]["anyOf"] = [{"required": ["prompt"]}, {"required": ["prompt_messages"]}]
    feedback = named["FeedbackEvent"]["properties"]
    feedback["source"] = {
        "anyOf": [{"$ref": "#/components/schemas/SourceType"}, {"$ref": "#/components/schemas/FeedbackSource"}],
        "description": "Who judged: a type (END_USER, ...), or an object with type and id (a model: name, version).",
    }
    named["SourceType"] = {"type": "string", "enum": ["HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL", "AI_CRITIC"]}


EXAMPLE_INFERENCE = {
    "request_id": "6f1c2b1e-8a52-4a53-9a57-3c1f0f7f2a10",
    "prompt": "Summarise our refund policy in one sentence.",
    "candidates": ["Refunds within 30 days, no questions asked.", "We refund unused items within a month."],
    "model": {"name": "acme-chat", "version": "2026-11", "checkpoint_hash": "sha256:4be1"},
    "sampling": {"temperature": 0.7, "top_p": 0.95},
    "context": {"session_id": "s-81", "user_id": "u-1042"},
}
_RID = EXAMPLE_INFERENCE["request_id"]
EXAMPLE_FEEDBACK: dict[str, Schema] = {
    "PAIRWISE": {"pairwise": {"chosen": 1, "rejected": 0}, "source": {"type": "END_USER", "id": "u-1042"}},
    "RANKING": {
        "ranking": [{"index": 0, "rank": 2}, {"index": 1, "rank": 1}],
        "source": {"type": "HUMAN_ANNOTATOR", "id": "ann-7", "version": "guidelines-v3"},
    },
    "SCORES": {
        "scores": [{"index": 0, "score": 0.31}, {"index": 1, "score": 0.78}],
        "source": {"type": "REWARD_MODEL", "name": "acme-rm", "version": "7"},
    },
    "RATING": {"rating": {"index": 1, "label": True, "scale": "thumbs"}, "source": "END_USER"},
    "IMPLICIT": {"implicit": {"index": 1, "signal": "copy", "label": True}, "source": "END_USER"},
}


def _feedback_examples() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, kind in enumerate(FEEDBACK_KINDS):
        event = {"feedback_id": f"0b5e0c8e-3a6f-4c1e-8d7a-1d2f3e4a5b{n:02d}", "request_id": _RID, "kind": kind}
        out[kind.lower()] = {"summary": f"a {kind} judgement", "value": {**event, **EXAMPLE_FEEDBACK[kind]}}
    return out


def _error(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _retry(description: str) -> Schema:
    headers = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
    return {**_error(description), "headers": headers}


def _ingest(record_type: str, summary: str, examples: dict[str, Any], max_events: int) -> Schema:
    ref = {"$ref": f"#/components/schemas/{record_type}"}
    batch = {"type": "array", "items": ref, "minItems": 1, "description": f"At most api.max_events ({max_events})."}
    body = {"oneOf": [ref, batch]}
    return {
        "post": {
            "summary": summary,
            "description": (
                "One event (an object) or a batch (an array). Every event is validated first: if any is invalid, "
                "none is sent (422 lists each invalid event by index). The answer 202 comes only after Kafka "
                "acknowledged every record. Retrying with the same ids is harmless: the join ignores a "
                "feedback_id or request_id it has seen, and the audit log stores each pair once. The key's "
                "tenant is stamped on every event (context.tenant; preflog.tenant on feedback), never read from "
                "the body."
            ),
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body, "examples": examples}}},
            "responses": {
                "202": {
                    "description": "Every event was acknowledged by Kafka.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                },
                "400": _error("The body is not JSON, or not an event or a non-empty array of events."),
                "401": _error("No API key, or an unknown or revoked one."),
                "403": _error("The key may not send these events (scope), or not from this browser origin."),
                "413": _error("The body or the batch is larger than the limits (api.max_body_bytes, api.max_events)."),
                "422": _error("Invalid events: each is listed by index with every problem; nothing was sent."),
                "429": _retry("The key sent more events than its rate allows."),
                "503": _retry(
                    "Kafka did not acknowledge in time, or is not keeping up; acknowledged and unacknowledged ids are "
                    "listed. Retry the request (harmless)."
                ),
            },
        }
    }


def _components(named: dict[str, Schema]) -> None:
    named["Accepted"] = {
        "type": "object",
        "required": ["accepted", "ids"],
        "properties": {
            "accepted": {"type": "integer", "description": "How many events Kafka acknowledged."},
            "ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Their ids (request_id or feedback_id), in the body's order, as canonical UUIDs "
                "(lower case, hyphenated), whatever form was sent.",
            },
        },
    }
    named["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong and what to do."},
            "events": {
                "type": "array",
                "description": "The invalid events, by index in the batch (0 for a single event).",
                "items": {
                    "type": "object",
                    "required": ["index", "errors"],
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": ["string", "null"]},
                        "errors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "acknowledged": {"type": "array", "items": {"type": "string"}},
            "unacknowledged": {"type": "array", "items": {"type": "string"}},
        },
    }


def describe(max_events: int = 1000, version: str = "0.1.0") -> Schema:
    """The OpenAPI 3.1 description of ``preflog serve``."""
    named: dict[str, Schema] = {}
    _events(named)
    _components(named)
    health_schema = {
        "type": "object",
        "required": ["ok", "waiting_for_kafka_s"],
        "properties": {
            "ok": {"type": "boolean"},
            "waiting_for_kafka_s": {
                "type": "number",
                "description": "How long the oldest unacknowledged record has waited (0: none waits).",
            },
        },
    }
    health = {"description": "The service runs.", "content": {"application/json": {"schema": health_schema}}}
    ready_schema = {
        "type": "object",
        "properties": {"status": {"enum": ["ok", "fail"]}, "reason": {"type": "string"}},
        "required": ["status", "reason"],
    }
    ready = {"description": "ok, or why not", "content": {"application/json": {"schema": ready_schema}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "preflog ingestion API",
            "version": version,
            "description": (
                "Send inference and feedback events over HTTP. Authenticate with `Authorization: Bearer "
                "pfk_...` (preflog keys create). Browser (public) keys send feedback only, from their origins."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8787"}],
        "paths": {
            "/v1/inference": _ingest(
                "InferenceEvent", "Log inference events", {"chat": {"value": EXAMPLE_INFERENCE}}, max_events
            ),
            "/v1/feedback": _ingest("FeedbackEvent", "Log feedback events", _feedback_examples(), max_events),
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": health}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: not while Kafka keeps records waiting longer than the ack timeout",
                    "security": [],
                    "responses": {"200": ready, "503": ready},
                }
            },
        },
        "components": {
            "schemas": dict(sorted(named.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "pfk_<id>_<secret>"}},
        },
    }
