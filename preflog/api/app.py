"""The ingestion API's HTTP layer (Starlette): keys, CORS, body limits, then :class:`.ingest.Ingest`.

Routes: ``POST /v1/inference`` and ``POST /v1/feedback`` (one event or an array), ``GET /healthz``, ``/readyz``,
``GET /openapi.json``, ``GET /metrics`` (Prometheus) and ``GET /preflog-feedback.js`` (the browser snippet).
A key is ``Authorization: Bearer pfk_...``; it is never logged or echoed. A request with an ``Origin``
(a browser) must use a public key listing that origin; preflight requests are answered for the origins of
the live public keys. The key file is read again when it changes, so ``preflog keys create|revoke`` take
effect at the next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from preflog.errors import ConfigError

from .ingest import Answer, Ingest
from .keys import ApiKey, KeyFile, KeyRefused
from .openapi import describe

__all__ = ["LiveKeys", "listen", "make_app"]

log = logging.getLogger(__name__)
REQUESTS = Counter("preflog_api_requests_total", "HTTP requests to the ingestion API", ["route", "status"])
LATENCY = Histogram(
    "preflog_api_request_seconds", "Time to answer an ingestion request, Kafka's acknowledgement included", ["route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)  # fmt: skip
ROUTES = {"/v1/inference": ("InferenceEvent", "inference"), "/v1/feedback": ("FeedbackEvent", "feedback")}


class LiveKeys:
    """The key file, read again whenever it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._keys = KeyFile(self.path)

    def current(self) -> KeyFile:
        try:
            st = self.path.stat()
            seen = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        if seen != self._seen:
            self._keys = KeyFile.load(self.path)
            self._seen = seen
        return self._keys

    def origins(self) -> set[str]:
        """Origins of the live public keys (the browsers allowed to ask)."""
        return {o for k in self.current().keys.values() if k.public and not k.revoked for o in k.origins}


def _cors(origin: str | None, allowed: bool) -> dict[str, str]:
    if origin is None or not allowed:
        return {}
    # Retry-After is not a header browsers show a page unless it is exposed: the snippet waits by it
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin"}


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:  # ASCII: an echoed id with a lone surrogate must not fail the answer
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _json(answer: Answer, extra: dict[str, str]) -> JSONResponse:
    return _Json(answer.body, answer.status, headers={**answer.headers, **extra})


async def _body(request: Request, limit: int) -> bytes | Answer:
    """The body, or a 413 as soon as it is known to be larger than ``limit``."""
    too_large = Answer(
        413, {"error": f"the body is larger than {limit} bytes (api.max_body_bytes): send smaller batches"}
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _events(body: bytes) -> list[Any] | Answer:
    try:
        parsed = json.loads(body)
    except RecursionError:
        return Answer(400, {"error": "the body nests too deeply: send an event object or an array of them"})
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return Answer(400, {"error": f"the body is not JSON{where}: send an event object or an array of them"})
    if isinstance(parsed, dict):
        return [parsed]
    if isinstance(parsed, list) and parsed:
        return parsed
    return Answer(400, {"error": "the body must be an event object or a non-empty array of event objects"})


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket made as asyncio makes its own (proto IPPROTO_TCP).

    asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose proto is IPPROTO_TCP; on a
    socket.create_server() socket (proto 0) every answer on a kept-alive connection waited for the
    client's delayed ACK: 40 ms a request.
    """
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def make_app(ingest: Ingest, keys: LiveKeys, max_body_bytes: int = 4 * 1024 * 1024) -> Starlette:
    """The ASGI app of ``preflog serve``."""
    spec = describe(ingest.max_events)

    async def receive(request: Request) -> Response:
        route = request.url.path
        started = time.perf_counter()
        response = await _receive(request, route)
        REQUESTS.labels(route, str(response.status_code)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    async def _receive(request: Request, route: str) -> Response:
        record_type, scope = ROUTES[route]
        origin = request.headers.get("origin")
        browser = _cors(origin, origin in keys.origins()) if origin else {}
        key = _key(request, scope, origin)
        if isinstance(key, Answer):
            return _json(key, browser)
        wait = ingest.limits.wait_s(key.id)
        if wait:  # refused before the body is read: a flood costs the service nothing to parse
            error = f"key {key.id} is over its rate ({ingest.limits.rate:g} events/s); retry after {wait} s"
            return _json(Answer(429, {"error": error}, {"Retry-After": str(wait)}), browser)
        body = await _body(request, max_body_bytes)
        if isinstance(body, Answer):
            return _json(body, browser)
        events = _events(body) if len(body) < 65536 else await asyncio.to_thread(_events, body)
        if isinstance(events, Answer):
            return _json(events, browser)
        return _json(await ingest.submit(key, record_type, events), browser)

    def _key(request: Request, scope: str, origin: str | None) -> ApiKey | Answer:
        header = request.headers.get("authorization", "")
        kind, _, text = header.partition(" ")
        if kind.lower() != "bearer" or not text.strip():
            answer = Answer(401, {"error": "no API key: send Authorization: Bearer pfk_... (preflog keys create)"})
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        try:
            key = keys.current().check(text.strip(), scope, origin)
        except ConfigError as exc:
            log.error("the API key file cannot be read: %s", exc)
            return Answer(
                503, {"error": "the service cannot read its key file; its operator must fix it"}, {"Retry-After": "5"}
            )
        except KeyRefused as refused:
            return Answer(refused.status, {"error": refused.reason}, {"WWW-Authenticate": "Bearer"})
        if origin is not None and not key.public:
            return Answer(403, {"error": (
                f"API key {key.id} is a secret key, sent from a browser (Origin {origin}): revoke it (it is exposed) "
                "and give browsers a public key (preflog keys create --public --scope feedback --origin ...)"
            )})  # fmt: skip
        return key

    async def preflight(request: Request) -> Response:
        origin = request.headers.get("origin")
        if request.url.path != "/v1/feedback" or origin is None or origin not in keys.origins():
            return JSONResponse({"error": "this origin may not send here (preflog keys create --public ...)"}, 403)
        headers = {
            **_cors(origin, True),
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "authorization, content-type",
            "Access-Control-Max-Age": "600",
        }
        return Response(status_code=204, headers=headers)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "waiting_for_kafka_s": round(ingest.stalled_s(), 3)})

    async def readyz(_: Request) -> Response:
        ok, reason = ingest.readiness()
        return JSONResponse({"status": "ok" if ok else "fail", "reason": reason}, 200 if ok else 503)

    async def openapi(_: Request) -> Response:
        return JSONResponse(spec)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def snippet(_: Request) -> Response:
        text = resources.files("preflog.api").joinpath("static/preflog-feedback.js").read_text()
        return Response(text, media_type="text/javascript", headers={"Access-Control-Allow-Origin": "*"})

    routes = [
        Route("/v1/inference", receive, methods=["POST"]),
        Route("/v1/feedback", receive, methods=["POST"]),
        Route("/v1/inference", preflight, methods=["OPTIONS"]),
        Route("/v1/feedback", preflight, methods=["OPTIONS"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/preflog-feedback.js", snippet, methods=["GET"]),
    ]
    return Starlette(routes=routes)
