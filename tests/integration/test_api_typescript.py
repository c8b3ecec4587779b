"""A client generated from docs/openapi.json, in TypeScript, against the real ``preflog serve``.

``tests/ts_client``: ``npm ci`` installs openapi-typescript (the types, generated here from the committed
description, never committed themselves), openapi-fetch (the runtime client) and TypeScript; ``tsc`` type-checks
``client.ts`` against the generated types (a type error fails this test: the description no longer accepts what a
client sends); node runs it against the API, with a real processor and sink behind it, and the pairs it should
make are read back from the Parquet audit log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import preflog

from .conftest import StartProcessor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "ts_client"
SPEC = ROOT / "docs" / "openapi.json"
NPM_ENV = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}

# what client.ts sends, written out again here: the test's own expectation, not read from the client
PROMPT = "Name the largest planet of the Solar System."
CANDIDATES = [
    "Saturn.",
    "Jupiter.",
    "Jupiter: more than twice the mass of all the other planets together.",
]
PAIRWISE = (2, 0)  # (chosen, rejected)
RANKS = {2: 1, 0: 3, 1: 2}  # candidate index -> rank (1 = best)


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in tests/ts_client; its whole process group is killed on timeout (nothing outlives it)."""
    proc = subprocess.Popen(
        args,
        cwd=CLIENT,
        env={**os.environ, **NPM_ENV, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish in {timeout:g} s:\n{out[-2000:]}\n{err[-2000:]}")
    finally:
        if proc.poll() is None:  # interrupted while waiting
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        pytest.fail(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _build_client() -> None:
    """npm ci, the client generated from docs/openapi.json, then tsc (type-check and compile)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: this test needs Node.js 20+ and npm (CI has them). "
            "Install them (apt-get install nodejs npm) and run the test again"
        )
    _check(_run(["npm", "ci", "--no-audit", "--no-fund"], timeout=300), "npm ci in tests/ts_client")
    generated = CLIENT / "generated" / "api.ts"
    generated.unlink(missing_ok=True)
    shutil.rmtree(CLIENT / "dist", ignore_errors=True)
    _check(_run(["npm", "run", "--silent", "generate"], timeout=120), f"openapi-typescript on {SPEC}")
    assert '"/v1/inference"' in generated.read_text() and '"/v1/feedback"' in generated.read_text()
    _check(_run(["npm", "run", "--silent", "build"], timeout=180), "tsc (type-check of client.ts)")
    assert (CLIENT / "dist" / "client.js").is_file()


def _expected_pairs(request_id: str, pairwise_id: str, ranking_id: str) -> set[tuple[Any, ...]]:
    """(request_id, feedback_id, kind, chosen index, rejected index, chosen text, rejected text) of every pair."""
    chosen, rejected = PAIRWISE
    pairs = {(request_id, pairwise_id, "PAIRWISE", chosen, rejected, CANDIDATES[chosen], CANDIDATES[rejected])}
    for better, rank_better in RANKS.items():
        for worse, rank_worse in RANKS.items():
            if rank_better < rank_worse:
                pairs.add((request_id, ranking_id, "RANKING", better, worse, CANDIDATES[better], CANDIDATES[worse]))
    return pairs


def _wait_pairs(url: str, expected: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            rows = preflog.read_pairs(url).to_pylist()
        except FileNotFoundError:
            rows = []
        if len(rows) >= expected:
            return rows
        time.sleep(0.5)
    return rows


@pytest.mark.timeout(600)  # npm ci on a cold cache; the rest takes seconds
def test_generated_typescript_client_sends_events_whose_pairs_reach_the_audit_log(
    start_api: Any, start_processor: StartProcessor, start_sink: Any, tmp_path: Path
) -> None:
    _build_client()

    start_processor()
    url = f"file://{tmp_path / 'audit'}"
    start_sink(url)
    api = start_api()
    tenant = f"ts-smoke-{uuid.uuid4().hex[:8]}"
    key = api.key(tenant=tenant)
    request_id, pairwise_id, ranking_id = (str(uuid.uuid4()) for _ in range(3))

    client = _run(
        ["node", "dist/client.js"],
        timeout=90,
        env={
            "PREFLOG_API_URL": api.url,
            "PREFLOG_API_KEY": key,
            "PREFLOG_REQUEST_ID": request_id,
            "PREFLOG_PAIRWISE_ID": pairwise_id,
            "PREFLOG_RANKING_ID": ranking_id,
        },
    )
    _check(client, "the TypeScript client (node dist/client.js)")
    assert json.loads(client.stdout) == {
        "inference": {"status": 202, "accepted": 1, "ids": [request_id]},
        "feedback": {"status": 202, "accepted": 2, "ids": [pairwise_id, ranking_id]},
    }

    expected = _expected_pairs(request_id, pairwise_id, ranking_id)
    assert len(expected) == 1 + 3  # the PAIRWISE, and every two of the 3 distinct ranks
    rows = _wait_pairs(url, len(expected))
    got = {
        (
            r["request_id"],
            r["feedback_id"],
            r["feedback_kind"],
            r["chosen_index"],
            r["rejected_index"],
            r["chosen"],
            r["rejected"],
        )
        for r in rows
    }
    assert got == expected
    assert len(rows) == len(expected) and len({r["pair_id"] for r in rows}) == len(expected)
    for r in rows:
        assert r["prompt"] == PROMPT
        assert r["model"]["name"] == "acme-chat"
        assert r["context"]["tenant"] == tenant  # stamped from the key
        assert r["context"]["session_id"] == "ts-smoke"
        assert dict(r["feedback_metadata"])["preflog.tenant"] == tenant
        expected_source = "END_USER" if r["feedback_kind"] == "PAIRWISE" else "HUMAN_ANNOTATOR"
        assert r["source"]["type"] == expected_source
