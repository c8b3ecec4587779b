"""The fault suite with the HTTP ingestion API in front (``--api``): clients post the traffic to ``preflog serve``.

:class:`ApiRun` starts ``preflog serve`` as one more service of the run (its own process group, killed
with the run like the others), talking to the broker through the same proxy as the processor, the sink
and the suite's own producers, with a key per tenant of the generated traffic (``KeyFile.create``) and
tight limits: ``plan.api_rate``/``api_burst`` (429s when the clients catch up after an outage) and
``plan.api_ack_timeout_s`` (503s during a broker cut).

:func:`send_traffic` paces the generated events as the plain run does, but the valid ones are gathered
into small batches (1..``plan.api_batch_max`` events of one type and one tenant, a lone event sent as an
object or as an array) that ``plan.api_clients`` client threads POST as JSON with httpx (datetimes as
ISO-8601, UUIDs as text), as a real client would: after a 429, a 503 or a connection error the same
events, same ids, again after Retry-After, until a 202 (or ``plan.api_give_up_s`` after the first try);
for half the batches the client trusts a 503's ``acknowledged`` list and sends only the other events
again, for the others it sends the whole batch again. A few batches (``plan.api_abandon``) have an
impatient client that gives up after its first answer other than a 202: their events may or may not
land (a 503's records may still be delivered), which the checks must allow without counting a loss.
Invalid generated events (undecodable bytes, an impossible candidate index) and the hostile inputs are
still sent raw, as in the plain run (the API refuses the invalid ones with a 422, as it should).
Meanwhile :func:`broker_faults` runs the plan's broker faults (network cuts; kill -9 and a restart
when the log is in S3) and kill -9 of the API itself, spread over the traffic's duration.

What is expected comes from the generator's decisions restricted to what the API acknowledged
(:func:`expectations`), never from the code under test: a pair must be in the log exactly once when
its inference and its feedback were both acknowledged (a 202, or listed ``acknowledged`` in a 503);
outcomes of events never acknowledged may or may not be there (never counted as lost), but a pair that
landed must be unique all the same (``fault_checks.check`` counts every pair_id seen twice).
:func:`check` adds the API's figures: requests, answers by status, retries, events acknowledged, pairs
of acknowledged events found once, missing or more than once, and each request's history for a pair
that is missing.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from fault_checks import Expected
from fault_checks import expectations as plain_expectations
from fault_inputs import BadInput, Expect
from fault_plan import log
from fault_readback import drain
from fault_schedule import broker_steps
from fault_stack import Service
from fault_traffic import CODEC, Sent, generated_value

from preflog.api.keys import KeyFile
from preflog.api.sender import as_json
from preflog.producers.generator import GeneratedEvent, expected_outcomes
from tests.service_env import base_env

if TYPE_CHECKING:
    from fault_run import Run

__all__ = ["ApiRun", "broker_faults", "check", "expectations", "send_traffic", "summary_rows"]

ROUTES = {"inference": "/v1/inference", "feedback": "/v1/feedback"}
#: answers after which a real client sends the same events again
RETRY = (429, 503)


def via_api(e: GeneratedEvent) -> bool:
    """Whether a generated event goes through the API (valid ones); invalid ones are sent raw."""
    return e.event_type != "garbage" and not e.invalid_reason and e.record is not None


def event_id(e: GeneratedEvent) -> str:
    """The id the API answers for an event: its request_id (inference) or feedback_id."""
    assert e.record is not None
    return str(e.record["request_id" if e.event_type == "inference" else "feedback_id"])


@dataclass
class Batch:
    """One request's events (one type, one tenant) and what became of its attempts.

    ``narrow``: after a 503 that lists the ids Kafka acknowledged, this client sends only the others again
    (trusting the list); otherwise it sends the whole batch again. ``single``: a lone event goes as an
    object, not an array. ``impatient``: the client gives up after its first answer other than a 202.
    """

    number: int
    route: str  # inference or feedback
    tenant: str
    labels: list[str]  # gen:<index> of each event
    ids: list[str]
    records: list[Any]  # the events as JSON values
    narrow: bool = False
    single: bool = False
    impatient: bool = False
    pending: list[int] = field(default_factory=list)  # indexes of the events the next attempt sends
    first_at: float | None = None
    attempts: int = 0
    outcome: str = "pending"  # acknowledged, gave up, refused <status>, stopped
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pending = self.pending or list(range(len(self.ids)))

    def pending_ids(self) -> list[str]:
        """The ids the next attempt sends."""
        return [self.ids[i] for i in self.pending]

    def body(self) -> bytes:
        """The JSON body of the next attempt."""
        records = [self.records[i] for i in self.pending]
        payload = records[0] if self.single and len(records) == 1 else records
        return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


@dataclass
class _Open:
    """A batch being gathered by the dispatcher."""

    route: str
    tenant: str
    target: int
    due: float
    labels: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)


class ApiRun:
    """``preflog serve`` in a fault run: the service, its keys, the clients' figures and what was acknowledged.

    Args:
        run: The run it belongs to (its broker proxy, topics, code copy and fault counts).
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.data_dir = run.dir / "api-data"
        self.port_file = self.data_dir / "api.port"
        self.port: int | None = None
        self.service: Service | None = None
        self.keys: dict[str, str] = {}  # tenant -> key text
        self.lock = threading.Lock()  # a kill and restart, or the watchdog's restart: one at a time
        self.stop = threading.Event()  # the run ends: clients stop retrying, broker_faults stops
        self.faults_thread: threading.Thread | None = None  # broker_faults, joined before the service is killed
        self.t0 = time.monotonic()
        self._figures = threading.Lock()
        self.answers: Counter[str] = Counter()
        self.batches: list[Batch] = []
        self.acked_202: set[str] = set()
        self.acked_503: set[str] = set()  # listed as acknowledged in a 503
        self.findings: list[str] = []  # answers that contradict the request, statuses no client expects
        self.requests: list[dict[str, Any]] = []
        self.settled: bool | None = None
        # set by expectations(): the generated pairs that must be there, and those that may
        self.must_pairs: set[tuple[str, int, int]] = set()
        self.maybe_pairs: set[tuple[str, int, int]] = set()

    @property
    def url(self) -> str:
        """The API's base URL (the same port across restarts)."""
        return f"http://127.0.0.1:{self.port}"

    # -- the service ---------------------------------------------------------------------------

    def start(self) -> None:
        """Starts ``preflog serve --port 0 --port-file F`` and waits until it answers; restarts keep that port."""
        run, plan = self.run, self.run.plan
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = base_env(run.bootstrap, run.topics.all())
        env["PREFLOG_DATA_DIR"] = str(self.data_dir)
        env["PREFLOG_API__RATE"] = str(plan.api_rate)
        env["PREFLOG_API__BURST"] = str(plan.api_burst)
        env["PREFLOG_API__ACK_TIMEOUT_S"] = str(plan.api_ack_timeout_s)
        env.update(run.code_env)
        args = ["serve", "--port", "0", "--port-file", str(self.port_file)]
        self.service = Service("api", args, env, run.dir, run.code_dir)
        self.service.start()
        self.port = self._wait_ready(90)
        self.service.args = ["serve", "--port", str(self.port), "--port-file", str(self.port_file)]
        log(f"preflog serve on {self.url}")

    def _wait_ready(self, timeout: float) -> int:
        """The port once the current start answers /healthz (RuntimeError if it exits or stays silent)."""
        assert self.service is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.alive():
                tail = self.service.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"preflog serve exited: {tail}")
            with contextlib.suppress(OSError, ValueError, httpx.HTTPError):
                port = int(self.port_file.read_text())
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return port
            time.sleep(0.2)
        raise RuntimeError(f"preflog serve did not answer in {timeout:.0f} s; see {self.service.log}")

    def make_keys(self, tenants: list[str]) -> None:
        """A key per tenant, both scopes (the service reads the key file again when it changes)."""
        keys = KeyFile(self.data_dir / "api" / "keys.json")
        for tenant in tenants:
            self.keys[tenant], _ = keys.create(tenant, ("inference", "feedback"), name=f"fault suite {tenant}")

    def kill_and_restart(self) -> None:
        """kill -9 of the API while clients send, then a restart on the same port."""
        assert self.service is not None
        with self.lock:
            self.service.kill()
            t0 = time.monotonic()
            self.service.start()
            self._wait_ready(90)
        self.run.notes.append(f"preflog serve answered again {time.monotonic() - t0:.1f} s after its kill -9")
        self.run.faults["kill -9 api (clients sending) + restart"] += 1

    def watch(self) -> None:
        """The watchdog's part: the API exiting by itself is a finding; it is restarted."""
        service = self.service
        if service is None or service.proc is None or not self.lock.acquire(blocking=False):
            return  # not started, or a kill and restart is under way
        try:
            if not service.alive():
                tail = service.log.read_text(errors="replace").splitlines()[-15:]
                self.run.crashes.append(
                    f"api exited on its own (code {service.proc.returncode}): " + " | ".join(tail)[-1500:]
                )
                log(f"api exited on its own (code {service.proc.returncode}); restarting")
                self.run.faults["api crashed by itself"] += 1
                service.start()
        finally:
            self.lock.release()

    def settle(self, timeout: float = 60.0) -> None:
        """Waits until the API has no record awaiting Kafka's acknowledgement (a 503's records may still land)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if httpx.get(f"{self.url}/healthz", timeout=2).json()["waiting_for_kafka_s"] == 0:
                    self.settled = True
                    return
            time.sleep(0.5)
        self.settled = False
        log(f"the API still had records awaiting Kafka after {timeout:.0f} s")

    def close(self) -> None:
        """Stops the clients' retries and the traffic's faults (so none starts a process after this), kills the API."""
        self.stop.set()
        if self.faults_thread is not None:
            self.faults_thread.join(150)  # a step under way ends first (a broker restart, the API's restart)
        if self.service is not None:
            with contextlib.suppress(Exception):
                self.service.kill()

    # -- the clients ---------------------------------------------------------------------------

    def acknowledged(self) -> set[str]:
        """Ids the API said Kafka acknowledged: every id of a 202, and the ``acknowledged`` of each 503."""
        with self._figures:
            return self.acked_202 | self.acked_503

    def client(self, work: queue.Queue[Batch | None]) -> None:
        """One client thread: posts the batches it takes from ``work`` until it takes None."""
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
            while True:
                batch = work.get()
                if batch is None:
                    return
                try:
                    self._post(http, batch)
                except Exception as exc:  # a bug of the client itself: say so rather than hang the run
                    self._finding(f"batch {batch.number}: the client failed: {type(exc).__name__}: {exc}")
                    batch.outcome = "client error"

    def _post(self, http: httpx.Client, batch: Batch) -> None:
        """Posts ``batch`` until a 202, sending the same events again after 429, 503 and connection errors."""
        plan = self.run.plan
        batch.first_at = time.monotonic()
        headers = {"Authorization": f"Bearer {self.keys[batch.tenant]}", "Content-Type": "application/json"}
        while True:
            if self.stop.is_set():
                batch.outcome = "stopped"
                return
            batch.attempts += 1
            sent = time.monotonic()
            wait = 1.0
            entry: dict[str, Any] = {
                "batch": batch.number,
                "attempt": batch.attempts,
                "route": batch.route,
                "tenant": batch.tenant,
                "events": len(batch.pending),
                "t": round(sent - self.t0, 3),
            }
            try:
                r = http.post(f"{self.url}{ROUTES[batch.route]}", content=batch.body(), headers=headers)
            except httpx.TransportError as exc:
                status = "connection error"
                entry.update(status=status, error=f"{type(exc).__name__}: {exc}"[:200])
            else:
                status = str(r.status_code)
                entry["status"] = r.status_code
                wait = self._answer(batch, r, entry)
            entry["seconds"] = round(time.monotonic() - sent, 3)
            batch.history.append(f"t={entry['t']}s {len(batch.pending)} events: {status} in {entry['seconds']}s")
            with self._figures:
                self.answers[status] += 1
                self.requests.append(entry)
            if batch.outcome != "pending":
                return
            if batch.impatient:
                batch.outcome = "abandoned"
                return
            if time.monotonic() + wait - batch.first_at > plan.api_give_up_s:
                batch.outcome = "gave up"
                log(f"batch {batch.number}: no 202 in {plan.api_give_up_s:.0f} s; the client gives up")
                return
            self.stop.wait(wait)

    def _answer(self, batch: Batch, r: httpx.Response, entry: dict[str, Any]) -> float:
        """Records an answer (acknowledged ids, findings); returns the wait before a retry."""
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._finding(
                f"batch {batch.number}: {r.status_code} with a body that is not a JSON object: {r.text[:200]}"
            )
            body = {}
        sent = batch.pending_ids()
        if r.status_code == 202:
            if body.get("ids") != sent or body.get("accepted") != len(sent):
                self._finding(
                    f"batch {batch.number}: 202 naming {body.get('accepted')} / {body.get('ids')}, "
                    f"not the {len(sent)} ids sent"
                )
            with self._figures:
                self.acked_202.update(sent)
            entry["acknowledged"] = len(sent)
            batch.outcome = "acknowledged"
            return 0.0
        if r.status_code in RETRY:
            acked = body.get("acknowledged") or []
            unacked = body.get("unacknowledged") or []
            strangers = sorted((set(acked) | set(unacked)) - set(sent))
            if strangers:
                self._finding(f"batch {batch.number}: {r.status_code} naming ids not sent: {strangers[:5]}")
            if (acked or unacked) and set(acked) | set(unacked) != set(sent):
                self._finding(f"batch {batch.number}: {r.status_code} leaves ids unaccounted for")
            if "acknowledged" in body:
                entry["kind"] = "after sending"
                entry.update(acknowledged=len(acked), unacknowledged=len(unacked))
            else:
                entry["kind"] = "before sending"
            entry["error"] = str(body.get("error"))[:200]
            with self._figures:
                self.acked_503.update(set(acked) & set(sent))
            if batch.narrow and acked:  # send only what Kafka has not acknowledged
                batch.pending = [i for i in batch.pending if batch.ids[i] not in set(acked)]
                if not batch.pending:
                    batch.outcome = "acknowledged"
            return retry_after(r)
        # nothing a client can fix by waiting: a finding (the events are valid, the key is right)
        self._finding(f"batch {batch.number} ({batch.route}, {len(sent)} events): {r.status_code} {r.text[:300]}")
        entry["error"] = r.text[:300]
        batch.outcome = f"refused {r.status_code}"
        return 0.0

    def _finding(self, text: str) -> None:
        log(f"api finding: {text}")
        with self._figures:
            self.findings.append(text)

    def new_batch(self, o: _Open, narrow: bool, single: bool, impatient: bool) -> Batch:
        """The batch of a gathered :class:`_Open` (see :class:`Batch` for the flags)."""
        with self._figures:
            batch = Batch(len(self.batches), o.route, o.tenant, o.labels, o.ids, o.records, narrow, single, impatient)
            self.batches.append(batch)
        return batch


def retry_after(r: httpx.Response) -> float:
    """The seconds of a Retry-After header (1 when there is none or it is not a number)."""
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def send_traffic(run: Run, events: list[GeneratedEvent], stop: threading.Event) -> None:
    """Sends ``events`` at their offsets in time from now: valid ones as batches by HTTP, invalid ones raw.

    Returns once every batch is acknowledged (or given up), the broker faults of the traffic are over and
    the API has nothing left awaiting Kafka.
    """
    api, plan, sender = run.api, run.plan, run.sender
    assert api is not None and sender is not None
    rng = random.Random(plan.seed + 3)
    tenant_of = {e.key: e.record["context"]["tenant"] for e in events if e.event_type == "inference" and e.record}
    tenants = sorted(set(tenant_of.values())) or ["acme"]
    api.make_keys(tenants)
    work: queue.Queue[Batch | None] = queue.Queue()
    clients = [
        threading.Thread(target=api.client, args=(work,), name=f"api-client-{n}", daemon=True)
        for n in range(plan.api_clients)
    ]
    for c in clients:
        c.start()
    duration = events[-1].at if events else 0.0
    api.t0 = t0 = time.monotonic()
    faults = threading.Thread(target=broker_faults, args=(run, duration), name="api-broker-faults", daemon=True)
    api.faults_thread = faults
    faults.start()
    gathering: dict[tuple[str, str], _Open] = {}

    def flush(key: tuple[str, str]) -> None:
        o = gathering.pop(key)
        narrow, single, impatient = rng.random() < 0.5, rng.random() < 0.5, rng.random() < plan.api_abandon
        work.put(api.new_batch(o, narrow, single, impatient))

    try:
        for i, e in enumerate(events):
            at = t0 + e.at
            while True:
                now = time.monotonic()
                for key in [k for k, o in gathering.items() if o.due <= now]:
                    flush(key)
                if now >= at:
                    break
                if stop.wait(min([at, *(o.due for o in gathering.values())]) - now):
                    api.stop.set()
                    return
            if not via_api(e):  # invalid: encoded here without validation and sent raw, as in the plain run
                role, value = generated_value(e)
                sender.send(Sent(f"gen:{i}", role, e.key.encode(), value))
                continue
            assert e.record is not None
            tenant = tenant_of.setdefault(e.key, rng.choice(tenants))  # an orphan feedback: any tenant, always the same
            key = (e.event_type, tenant)
            if key not in gathering:
                target = rng.randint(1, plan.api_batch_max)
                gathering[key] = _Open(e.event_type, tenant, target, time.monotonic() + rng.uniform(0.2, 5.0))
            o = gathering[key]
            o.labels.append(f"gen:{i}")
            o.ids.append(event_id(e))
            o.records.append(as_json(e.record))
            if len(o.ids) >= o.target:
                flush(key)
        for key in list(gathering):
            flush(key)
    finally:
        for _ in clients:
            work.put(None)
        for c in clients:
            c.join()
        faults.join()
    api.settle()
    a = api.answers
    log(
        f"api traffic done: {len(api.batches)} batches, {sum(a.values())} requests ({dict(a)}), "
        f"{len(api.acknowledged())} ids acknowledged"
    )


def broker_faults(run: Run, duration: float) -> None:
    """The plan's broker faults and kill -9 of the API, spread over the traffic (15% to 80% of ``duration``).

    Stops between steps once the run closes (``ApiRun.stop``), and the run waits for a step under way.
    """
    api = run.api
    assert api is not None
    steps = broker_steps(run) + [("kill -9 api", api.kill_and_restart)] * run.plan.api_kills
    random.Random(run.plan.seed + 4).shuffle(steps)
    start, end = 0.15 * duration, 0.8 * duration
    slot = (end - start) / max(1, len(steps))
    for n, (name, step) in enumerate(steps):
        if api.stop.wait(max(0.0, api.t0 + start + n * slot - time.monotonic())):
            return
        log(f"fault (clients sending): {name}")
        try:
            step()
        except Exception as exc:  # a fault that could not be injected is a finding of the run, not a hang
            run.crashes.append(f"fault {name!r} failed: {type(exc).__name__}: {exc}")
            log(f"fault {name!r} failed: {type(exc).__name__}: {exc}")


# -- expectations and checks -------------------------------------------------------------------


def expectations(
    run: Run, events: list[GeneratedEvent], sent: list[Sent], bad: list[BadInput], movers: set[Any]
) -> Expected:
    """What the run must find when the valid traffic went through the API.

    The generator's decisions (``expected_outcomes``) over every event say what may be in the log; over
    the events the API acknowledged (and those sent raw) they say what must be. A pair, a signal or an
    unmatched row must be there when both computations give it: its inference and its feedback were
    acknowledged. The other generated pairs, signals and unmatched rows are allowed (not lost when
    absent, not unexpected when present). An invalid feedback sent raw whose inference was never acknowledged may be
    unmatched NO_INFERENCE instead of a dead letter. Hostile inputs and movers: as in the plain run.
    """
    api = run.api
    assert api is not None
    acked = api.acknowledged()
    exp = plain_expectations(events, sent, bad, movers)
    every = expected_outcomes(events)
    must = expected_outcomes([e for e in events if not via_api(e) or event_id(e) in acked])
    # between nothing unacknowledged landing (must) and everything landing (every): NO_FEEDBACK when no
    # valid feedback of the inference landed, NO_INFERENCE when the inference did not
    exp.allowed_unmatched = {
        reason: must.unmatched.get(reason, set()) | every.unmatched.get(reason, set())
        for reason in set(must.unmatched) | set(every.unmatched)
    }
    api.must_pairs = must.pairs & every.pairs
    api.maybe_pairs = every.pairs - api.must_pairs
    exp.pairs = (exp.pairs - every.pairs) | api.must_pairs
    exp.allowed_pairs = set(api.maybe_pairs)
    exp.signals = must.signals & every.signals
    exp.allowed_signals = every.signals - exp.signals
    exp.unmatched = {
        reason: ids & every.unmatched.get(reason, set())
        for reason, ids in must.unmatched.items()
        if ids & every.unmatched.get(reason, set())
    }
    for n, (label, item, expect, b) in enumerate(exp.at_offset):
        if b is None and item.label.startswith("gen:"):
            e = events[int(item.label.split(":")[1])]
            if e.event_type == "feedback" and e.key not in acked:
                alternative = (Expect("unmatched", "NO_INFERENCE"),)
                exp.at_offset[n] = (label, item, Expect(expect.table, expect.detail, alternative), b)
    return exp


def check(run: Run, events: list[GeneratedEvent], rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The API's figures, and the pairs of acknowledged events: each there exactly once.

    Also writes every request (``api_requests.jsonl``) beside the run's results.
    """
    api = run.api
    assert api is not None
    stored = Counter((r["feedback_id"], r["chosen_index"], r["rejected_index"]) for r in rows["pairs"])
    missing = sorted(p for p in api.must_pairs if stored[p] == 0)
    doubled = sorted(p for p in api.must_pairs if stored[p] > 1)
    landed = [p for p in api.maybe_pairs if stored[p] > 0]
    landed_doubled = [p for p in landed if stored[p] > 1]
    acked = api.acknowledged()
    labels = {f"gen:{i}": e for i, e in enumerate(events) if via_api(e)}
    acked_labels = [label for label, e in labels.items() if event_id(e) in acked]
    only_503 = {i for i in api.acked_503 if i not in api.acked_202}
    kinds = Counter(f"503 {r['kind']}" for r in api.requests if r.get("status") == 503)
    by_id: dict[str, list[Batch]] = {}
    for b in api.batches:
        for i in b.ids:
            by_id.setdefault(i, []).append(b)
    request_of = {e.record["feedback_id"]: e.key for e in labels.values() if e.record and e.event_type == "feedback"}
    missing_detail = []
    for fid, chosen, rejected in missing[:20]:
        rid = request_of.get(fid, "?")
        missing_detail.append(
            {
                "pair": [fid, chosen, rejected],
                "inference": [f"batch {b.number}: {b.outcome}; {'; '.join(b.history)}" for b in by_id.get(rid, [])],
                "feedback": [f"batch {b.number}: {b.outcome}; {'; '.join(b.history)}" for b in by_id.get(fid, [])],
            }
        )
    copies = kafka_copies(run)
    generated = Counter(event_id(e) for e in labels.values())
    extra = sum(max(0, copies[i] - n) for i, n in generated.items())
    sizes = [len(b.ids) for b in api.batches]
    outcomes = Counter(b.outcome for b in api.batches)
    with (run.dir / "api_requests.jsonl").open("w") as out:
        for entry in api.requests:
            out.write(json.dumps(entry) + "\n")
    answers = dict(api.answers)
    return {
        "requests": sum(answers.values()),
        "answers": answers,
        "answers_503": dict(kinds),
        "retries": sum(max(0, b.attempts - 1) for b in api.batches),
        "batches": len(api.batches),
        "batch_outcomes": dict(outcomes),
        "events_per_request": {"mean": round(sum(sizes) / len(sizes), 1) if sizes else 0, "max": max(sizes, default=0)},
        "events_via_api": len(labels),
        "events_acknowledged": len(acked_labels),
        "ids_acknowledged": len(acked),
        "ids_listed_acknowledged_in_a_503": len(api.acked_503),
        "ids_acknowledged_only_in_a_503": len(only_503),
        "events_never_acknowledged": len(labels) - len(acked_labels),
        "kafka_records": {
            "of_api_events": sum(copies[i] for i in generated),
            "events": len(labels),
            "extra_copies_from_retries": extra,
            "ids_with_no_record": sum(1 for i in generated if copies[i] == 0),
        },
        "settled": api.settled,
        "pairs_of_acknowledged": {
            "expected": len(api.must_pairs),
            "found_once": sum(1 for p in api.must_pairs if stored[p] == 1),
            "missing": len(missing),
            "more_than_once": len(doubled),
            "missing_detail": missing_detail,
            "more_than_once_sample": [list(p) for p in doubled[:10]],
        },
        "pairs_of_unacknowledged": {
            "possible": len(api.maybe_pairs),
            "landed": len(landed),
            "more_than_once": len(landed_doubled),
        },
        "findings": list(api.findings),
        "ok": not missing and not doubled and not landed_doubled and not api.findings,
    }


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's rows of an ``--api`` run."""
    a = r["answers"]
    other = {k: v for k, v in a.items() if k not in ("202", "503", "429", "connection error")}
    pa, pu, k = r["pairs_of_acknowledged"], r["pairs_of_unacknowledged"], r["kafka_records"]
    rows = [
        ("API (preflog serve)", ""),
        (
            "  requests: 202 / 503 / 429 / connection errors",
            f"{r['requests']}: {a.get('202', 0)} / {a.get('503', 0)} / {a.get('429', 0)} / "
            f"{a.get('connection error', 0)}" + (f"; other {other}" if other else ""),
        ),
        ("  503s (refused before sending / records sent, not all acked)", _kinds(r["answers_503"])),
        ("  retries (same ids again)", str(r["retries"])),
        (
            "  batches (events per request)",
            f"{r['batches']} (mean {r['events_per_request']['mean']}, max {r['events_per_request']['max']}); "
            f"{r['batch_outcomes']}",
        ),
        ("  events acknowledged / sent through the API", f"{r['events_acknowledged']} / {r['events_via_api']}"),
        (
            "  ids a 503 listed acknowledged / never in a 202",
            f"{r['ids_listed_acknowledged_in_a_503']} / {r['ids_acknowledged_only_in_a_503']}",
        ),
        ("  events never acknowledged", str(r["events_never_acknowledged"])),
        (
            "  records on Kafka of those events (extra copies of retries)",
            f"{k['of_api_events']} for {k['events']} events ({k['extra_copies_from_retries']}; "
            f"{k['ids_with_no_record']} ids with none)",
        ),
        (
            "  pairs of acknowledged events expected / found once",
            f"{pa['expected']} / {pa['found_once']} (missing {pa['missing']}, more than once {pa['more_than_once']})",
        ),
        (
            "  pairs of unacknowledged events possible / landed",
            f"{pu['possible']} / {pu['landed']} (more than once {pu['more_than_once']})",
        ),
        ("  answers contradicting the request", str(len(r["findings"]))),
    ]
    for d in pa["missing_detail"]:
        rows.append(("  missing acknowledged pair", f"{d['pair']} inference {d['inference']} feedback {d['feedback']}"))
    for f in r["findings"][:10]:
        rows.append(("  finding", f[:300]))
    return rows


def _kinds(kinds: dict[str, int]) -> str:
    return f"{kinds.get('503 before sending', 0)} / {kinds.get('503 after sending', 0)}"


def kafka_copies(run: Run) -> Counter[str]:
    """Records per id on the inference and feedback topics (request_id, feedback_id): a retry's copies counted."""
    roles = {
        run.topics.inference: ("InferenceEvent", "request_id"),
        run.topics.feedback: ("FeedbackEvent", "feedback_id"),
    }
    copies: Counter[str] = Counter()
    for m in drain(run, list(roles), "faults-api"):
        record_type, key = roles[m.topic() or ""]
        with contextlib.suppress(Exception):  # hostile records do not decode: not the API's
            copies[str(CODEC.decode(m.value() or b"", record_type)[key])] += 1
    return copies
