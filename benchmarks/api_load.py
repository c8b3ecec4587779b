"""The ingestion API under load, against the SDK producing the same events in the same run.

    python benchmarks/api_load.py [--events 20000] [--batch 50] [--clients 8] [--seconds 10] [--json PATH]

Starts the embedded broker and one ``preflog serve`` worker (a child process, its own core), makes
``--events`` inference events of production size (prompts of 0.8-2.4 kB, two answers of 0.3-2 kB,
``realistic_text.py``) and as many PAIRWISE feedbacks, and measures:

* **SDK**: one ``PreflogProducer`` in this process sends them all; events/s until ``flush()`` returns
  (every record acknowledged);
* **API, batched, max rate**: ``--clients`` concurrent HTTP clients post batches of ``--batch``
  events (bodies encoded beforehand) as fast as answers come; events/s and per-request latency
  (p50/p99, Kafka's acknowledgement included: a 202 means acknowledged);
* **API, batched, half the max rate**: an open-loop schedule at half the rate just measured, each
  request's latency counted from its scheduled start (so a stall is not hidden), for ``--seconds``;
* **SDK on the same schedule**: the SDK sending the same batches at the same times, each batch's time
  to its last acknowledgement: the floor the broker sets under the API's latency;
* **API, one event per request**: max rate, for comparison.

Goals (issue 21): batched API >= 0.5x the SDK's events/s; p99 <= 50 ms at half the max rate.
The load generator (Python, httpx) shares the machine with the service and the broker: on 2
cores it takes CPU the service would otherwise have, so the API's figures are a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_stack import broker_with_topics, percentile  # noqa: E402
from realistic_text import TextMaker  # noqa: E402

from preflog.api.keys import KeyFile  # noqa: E402
from preflog.producers import PreflogProducer  # noqa: E402
from preflog.settings import load_settings, settings_env  # noqa: E402


def make_events(n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` inference events (texts of production size) and a PAIRWISE feedback for each, as JSON values."""
    maker = TextMaker(seed)
    keys = np.arange(n) + seed * 10_000_000
    prompts = maker.texts(0, keys, (800, 2400)).to_pylist()
    first = maker.texts(1, keys, (300, 2000)).to_pylist()
    second = maker.texts(2, keys, (300, 2000)).to_pylist()
    now = datetime.now(timezone.utc).isoformat()
    inferences, feedbacks = [], []
    for i in range(n):
        rid = str(uuid.uuid4())
        inferences.append({
            "request_id": rid, "event_time": now, "prompt": prompts[i], "candidates": [first[i], second[i]],
            "model": {"name": "acme-chat", "version": "2026.11"}, "sampling": {"temperature": 0.7},
            "context": {"session_id": f"s-{i % 997}", "user_id": f"u-{i % 5003}"},
        })  # fmt: skip
        feedbacks.append({
            "feedback_id": str(uuid.uuid4()), "request_id": rid, "event_time": now, "kind": "PAIRWISE",
            "pairwise": {"chosen": i % 2, "rejected": 1 - i % 2}, "source": {"type": "END_USER", "id": f"u-{i % 5003}"},
        })  # fmt: skip
    return inferences, feedbacks


def sdk_rate(settings: Any, inferences: list[dict[str, Any]], feedbacks: list[dict[str, Any]]) -> float:
    with PreflogProducer.from_settings(settings) as producer:
        started = time.perf_counter()
        for event in inferences:
            producer.log_inference(event)
        for event in feedbacks:
            producer.log_feedback(event)
        left = producer.flush(120)
        elapsed = time.perf_counter() - started
    assert left == 0, f"{left} records not acknowledged"
    return (len(inferences) + len(feedbacks)) / elapsed


def sdk_paced(
    settings: Any, batches: list[tuple[str, list[dict[str, Any]]]], events_per_s: float, seconds: float
) -> list[float]:
    """The SDK on the half-rate schedule: each batch's time from its scheduled start to its last acknowledgement."""
    per_batch = len(batches[0][1])
    interval = per_batch / events_per_s
    count = min(len(batches), int(seconds / interval))
    done: list[list[float]] = [[] for _ in range(count)]
    starts: list[float] = []
    with PreflogProducer.from_settings(settings) as producer:
        started = time.perf_counter()
        for i in range(count):
            at = started + i * interval
            time.sleep(max(0.0, at - time.perf_counter()))
            starts.append(at)
            kind, events = batches[i]
            send = producer.log_inference if kind == "/v1/inference" else producer.log_feedback
            for event in events:
                send(event).add_done_callback(lambda _, i=i: done[i].append(time.perf_counter()))
        producer.flush(60)
    return [max(d) - at for d, at in zip(done, starts, strict=True) if len(d) == per_batch]


class Load:
    """Pre-encoded request bodies, posted by concurrent clients."""

    def __init__(self, url: str, key: str, bodies: list[tuple[str, bytes, int]]) -> None:
        self.url, self.key, self.bodies = url, key, bodies
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    async def _post(self, client: httpx.AsyncClient, route: str, body: bytes, since: float) -> None:
        answer = await client.post(route, content=body)
        self.latencies.append(time.perf_counter() - since)
        self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1

    def _client(self, clients: int) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
        return httpx.AsyncClient(base_url=self.url, headers=headers, limits=limits, timeout=60)

    async def closed_loop(self, clients: int) -> tuple[float, int]:
        """Every body, ``clients`` at a time, each client posting its next as soon as it has an answer."""
        queue = list(reversed(self.bodies))
        events = sum(n for _, _, n in self.bodies)
        async with self._client(clients) as client:

            async def worker() -> None:
                while queue:
                    route, body, _ = queue.pop()
                    await self._post(client, route, body, time.perf_counter())

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return events / (time.perf_counter() - started), events

    async def open_loop(self, events_per_s: float, seconds: float) -> float:
        """Bodies started on a fixed schedule at ``events_per_s``; latency from each scheduled start."""
        per_request = self.bodies[0][2]
        interval = per_request / events_per_s
        count = min(len(self.bodies), int(seconds / interval))
        async with self._client(64) as client:
            started = time.perf_counter()
            tasks = []
            for i in range(count):
                at = started + i * interval
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                route, body, _ = self.bodies[i]
                tasks.append(asyncio.create_task(self._post(client, route, body, at)))
            await asyncio.gather(*tasks)
            return count * per_request / (time.perf_counter() - started)


def batches(
    inferences: list[dict[str, Any]], feedbacks: list[dict[str, Any]], batch: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The events of :func:`bodies`, not encoded."""
    out = []
    for i in range(0, len(inferences), batch):
        out += [("/v1/inference", inferences[i : i + batch]), ("/v1/feedback", feedbacks[i : i + batch])]
    return out


def bodies(
    inferences: list[dict[str, Any]], feedbacks: list[dict[str, Any]], batch: int
) -> list[tuple[str, bytes, int]]:
    """Requests of ``batch`` events: each batch of inferences, then the batch of their feedback."""
    out = []
    for i in range(0, len(inferences), batch):
        for route, events in (("/v1/inference", inferences), ("/v1/feedback", feedbacks)):
            chunk = events[i : i + batch]
            out.append((route, json.dumps(chunk if batch > 1 else chunk[0]).encode(), len(chunk)))
    return out


def start_api(settings: Any, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = work / "api.port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}
    env.update(settings_env(settings))
    log = (work / "api.log").open("ab")
    command = [sys.executable, "-m", "preflog", "serve", "--port", "0", "--port-file", str(port_file)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"preflog serve did not start; see {work / 'api.log'}")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}"


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n = args.events
    with broker_with_topics(work) as (bootstrap, topics):
        settings = load_settings({
            "kafka": {"bootstrap_servers": bootstrap}, "topics": topics.model_dump(), "data_dir": str(work),
            "api": {"rate": 1e9, "burst": 1_000_000_000, "max_in_flight": 1_000_000},
        })  # fmt: skip
        print(f"making {n} inference events of production size and {n} feedbacks ...", flush=True)
        sdk_events = make_events(n, 1)
        batched = make_events(n, 2)
        half = make_events(n, 3)
        single = make_events(max(1, n // 10), 4)
        key, _ = KeyFile.load(work / "api" / "keys.json").create("bench", ("inference", "feedback"))
        proc, url = start_api(settings, work)
        try:
            warm = make_events(200, 5)
            asyncio.run(Load(url, key, bodies(*warm, args.batch)).closed_loop(args.clients))
            sdk = sdk_rate(settings, *sdk_events)
            print(f"SDK: {sdk:,.0f} events/s", flush=True)
            top = Load(url, key, bodies(*batched, args.batch))
            api_rate, _ = asyncio.run(top.closed_loop(args.clients))
            print(f"API batched ({args.batch}/request, {args.clients} clients): {api_rate:,.0f} events/s", flush=True)
            paced = Load(url, key, bodies(*half, args.batch))
            paced_rate = asyncio.run(paced.open_loop(api_rate / 2, args.seconds))
            sdk_half = sdk_paced(settings, batches(*make_events(n, 6), args.batch), api_rate / 2, args.seconds)
            ones = Load(url, key, bodies(*single, 1))
            one_rate, _ = asyncio.run(ones.closed_loop(args.clients))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    ms = 1000.0
    return {
        "events": 2 * n,
        "batch": args.batch,
        "clients": args.clients,
        "sdk_events_per_s": round(sdk),
        "api_events_per_s": round(api_rate),
        "ratio_api_to_sdk": round(api_rate / sdk, 2),
        "api_p50_ms_at_max": round(percentile(top.latencies, 50) * ms, 1),
        "api_p99_ms_at_max": round(percentile(top.latencies, 99) * ms, 1),
        "half_rate_events_per_s": round(paced_rate),
        "api_p50_ms_at_half": round(percentile(paced.latencies, 50) * ms, 1),
        "api_p99_ms_at_half": round(percentile(paced.latencies, 99) * ms, 1),
        "sdk_p50_ms_same_schedule": round(percentile(sdk_half, 50) * ms, 1),
        "sdk_p99_ms_same_schedule": round(percentile(sdk_half, 99) * ms, 1),
        "single_events_per_s": round(one_rate),
        "single_p99_ms_at_max": round(percentile(ones.latencies, 99) * ms, 1),
        "statuses": {str(k): v for k, v in sorted({**top.statuses, **paced.statuses}.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="inference events per phase (and as many feedbacks)")
    parser.add_argument("--batch", type=int, default=50, help="events per request")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients at max rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the half-rate phase")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflog-api-load-") as tmp:
        figures = run(args, Path(tmp))
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    ok = (
        figures["ratio_api_to_sdk"] >= 0.5
        and figures["api_p99_ms_at_half"] <= 50
        and set(figures["statuses"]) == {"202"}
    )
    print(f"goals (>= 0.5x the SDK batched; p99 <= 50 ms at half rate; every answer 202): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
