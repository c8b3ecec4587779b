"""A real browser judges: headless Chromium clicks a thumbs button wired by the API's /preflog-feedback.js.

A local page (api_browser_page.html, served by http.server on a port of its own: its own origin) loads the
snippet from ``preflog serve`` and binds its buttons with a public key of that origin. The inference goes in
through the API with a secret key; the click's RATING must come out of the join as an unpaired signal of
the key's tenant. The refusals are the browser's own too: a key of another origin (CORS), a secret key in a
page, a public key sending inference, and a public key of another tenant judging this tenant's inference
(a TenantMismatch dead letter, never a signal).

Debian's Chromium (apt-get install chromium), driven by Playwright; no browser is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.tables import TABLES
from preflog.settings import TopicSettings

from ..conftest import inference
from ..kafka_helpers import read_topic
from .api_helpers import Api
from .conftest import StartProcessor

pytestmark = pytest.mark.integration

CODEC = SingleObjectCodec()
PAGE = Path(__file__).with_name("api_browser_page.html")
FIX = "install Debian's chromium (apt-get install chromium); .ci/run does"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
Records = list[dict[str, Any]]


def _chromium() -> str:
    path = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"no Chromium on this machine: {FIX}")
    pytest.skip(f"no Chromium on this machine: {FIX}")


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium (closed, with Playwright's driver, at the end of the test)."""
    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site() -> Iterator[str]:
    """The page's origin: http.server on a free loopback port, serving only the page (at /)."""
    body = PAGE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != "/":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query holds a key: not logged

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="api-browser-page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def _page(browser: Browser, site: str, api: Api, key: str, request_id: str) -> Iterator[tuple[Page, list[str]]]:
    """The page in a fresh browser context, its snippet bound with ``key``; and what its console said."""
    context = browser.new_context()
    notes: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: notes.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: notes.append(f"page error: {e}"))
        page.goto(f"{site}/?{urlencode({'endpoint': api.url, 'key': key, 'request': request_id})}")
        page.wait_for_selector("body[data-ready]", state="attached", timeout=20_000)
        assert page.get_attribute("body", "data-ready") == "yes", notes
        yield page, notes
    finally:
        context.close()


def _click(browser: Browser, site: str, api: Api, key: str, request_id: str, button: str) -> tuple[str, list[str]]:
    """Click thumbs ``button`` ("up" or "down", candidate 1); its data-preflog-state once settled, and the console."""
    with _page(browser, site, api, key, request_id) as (page, notes):
        page.click(f"#{button}")
        settled = "id => !['sending', null].includes(document.getElementById(id).getAttribute('data-preflog-state'))"
        try:
            page.wait_for_function(settled, arg=button, timeout=60_000)
        except PlaywrightTimeout:
            state = page.get_attribute(f"#{button}", "data-preflog-state")
            raise AssertionError(f"the click did not settle in 60 s (state {state!r}): {notes}") from None
        return page.get_attribute(f"#{button}", "data-preflog-state") or "", notes


def _inference(request_id: str) -> dict[str, Any]:
    """An inference as JSON, of now (the browser's judgement is of now too); its tenant is the key's."""
    event = inference(request_id=request_id, event_time=datetime.now(timezone.utc).isoformat())
    del event["context"]["tenant"]
    return event


def _read(
    config: dict[str, Any], topics: TopicSettings, role: str, done: Callable[[Records], bool], settle: float = 1.0
) -> Records:
    """The decoded records of output ``role``, read until ``done`` (at most 60 s), then ``settle`` s more."""
    topic, record_type = getattr(topics, role), TABLES[role].record

    def decoded(msgs: list[Any]) -> Records:
        return [CODEC.decode(m.value() or b"", record_type, topic) for m in msgs]

    got = read_topic(config, topic, topics.partitions, 1, timeout=60, settle=settle, done=lambda m: done(decoded(m)))
    return decoded(got)


def _mismatch(dead: dict[str, Any]) -> bool:
    return bool(dead["error_class"] == "TenantMismatch")


def test_a_thumbs_up_clicked_in_chromium_reaches_the_log_and_another_tenants_is_dead_lettered(
    start_api: Callable[..., Api],
    start_processor: StartProcessor,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    site: str,
    chromium: Browser,
) -> None:
    start_processor(window_s=120, grace_s=10)  # it starts while the rest gets ready
    api = start_api()
    secret = api.key("acme", ("inference",))
    mine = api.key("acme", ("feedback",), public=True, origins=(site,))
    theirs = api.key("globex", ("feedback",), public=True, origins=(site,))
    rid = str(uuid.uuid4())
    sent = api.post("/v1/inference", _inference(rid), secret)
    assert sent.status_code == 202 and sent.json()["ids"] == [rid], sent.text

    state, notes = _click(chromium, site, api, mine, rid, "up")
    assert state == "sent", notes
    signals = _read(kafka_config, topics, "unpaired", lambda got: any(s["request_id"] == rid for s in got))
    (signal,) = [s for s in signals if s["request_id"] == rid]
    assert (signal["feedback_kind"], signal["completion_index"], signal["label"]) == ("RATING", 1, True)
    assert signal["context"]["tenant"] == "acme"  # stamped from the key, the event named none
    assert (signal["completion"], signal["signal"], signal["source"]["type"]) == ("9", "thumbs", "END_USER")

    # globex's page key judging acme's inference: the API cannot know whose it is (202), the join refuses it
    state, notes = _click(chromium, site, api, theirs, rid, "down")
    assert state == "sent", notes
    dead = _read(kafka_config, topics, "dead_letter", lambda got: any(_mismatch(d) for d in got))
    (mismatch,) = [d for d in dead if _mismatch(d)]
    judged = CODEC.decode(mismatch["value"], "FeedbackEvent", topics.feedback)
    assert judged["request_id"] == rid and judged["metadata"]["preflog.tenant"] == "globex"
    assert (judged["rating"]["index"], judged["rating"]["label"]) == (1, False)
    assert "'globex'" in mismatch["reason"] and "'acme'" in mismatch["reason"]
    signals = _read(kafka_config, topics, "unpaired", lambda got: len(got) >= 1, settle=3)
    assert [s["feedback_id"] for s in signals] == [signal["feedback_id"]]  # no signal from globex's judgement


def test_a_page_is_refused_with_a_key_of_other_origins_a_secret_key_or_for_inference(
    start_api: Callable[..., Api], kafka_config: dict[str, Any], topics: TopicSettings, site: str, chromium: Browser
) -> None:
    api = start_api()
    secret = api.key("acme", ("inference", "feedback"))
    elsewhere = api.key("acme", ("feedback",), public=True, origins=("https://chat.example.com",))
    rid = str(uuid.uuid4())
    assert api.post("/v1/inference", _inference(rid), secret).status_code == 202

    def preflight(route: str) -> httpx.Response:
        asks = {"Origin": site, "Access-Control-Request-Method": "POST"}
        return httpx.options(f"{api.url}{route}", headers=asks, timeout=10)

    # no live key lists the page's origin: the preflight is refused, so the fetch fails without a status
    assert preflight("/v1/feedback").status_code == 403
    state, notes = _click(chromium, site, api, elsewhere, rid, "up")
    assert state == "failed network", (state, notes)
    assert any("CORS" in n for n in notes), notes

    # once a key lists the page's origin its preflight passes; a key of other origins is still refused
    mine = api.key("acme", ("feedback",), public=True, origins=(site,))
    allowed = preflight("/v1/feedback")
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == site
    state, notes = _click(chromium, site, api, elsewhere, rid, "up")
    assert state == "failed 403", (state, notes)
    state, notes = _click(chromium, site, api, secret, rid, "up")  # a secret key in a page
    assert state == "failed 403", (state, notes)

    # a public key may not send inference: not from a page (no preflight), not with or without an Origin
    assert preflight("/v1/inference").status_code == 403
    with _page(chromium, site, api, mine, rid) as (page, notes):
        tried = page.evaluate(
            """async ([endpoint, key, event]) => {
                 try {
                   const r = await fetch(endpoint + "/v1/inference", {method: "POST", body: JSON.stringify(event),
                     headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}});
                   return "answered " + r.status;
                 } catch (e) { return "failed " + e.name; }
               }""",
            [api.url, mine, _inference(str(uuid.uuid4()))],
        )
        assert tried == "failed TypeError", (tried, notes)
    for headers in ({}, {"Origin": site}):
        refused = api.post("/v1/inference", _inference(str(uuid.uuid4())), mine, **headers)
        assert refused.status_code == 403 and "may not send inference" in refused.json()["error"], refused.text

    # nothing refused reached Kafka
    assert read_topic(kafka_config, topics.feedback, topics.partitions, 1, timeout=3, settle=0) == []
    inferences = read_topic(kafka_config, topics.inference, topics.partitions, 1, timeout=10, settle=2)
    assert [(m.key() or b"").decode() for m in inferences] == [rid]
