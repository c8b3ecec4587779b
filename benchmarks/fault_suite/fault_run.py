"""One fault-suite run (:class:`Run`): moto, Tansu behind a proxy, the processor and sink services, the traffic.

The services run from a copy of the code taken at the start (``snapshot``),
so edits made to the working tree during a long run do not reach them. With
``plan.privacy`` the run also makes the privacy keys and the keys topic
(``fault_privacy.py``) and the valid generated events go through the SDK sealed.
With ``plan.api`` it also starts ``preflog serve`` (``fault_api.py``) and the
valid generated events are posted to it by HTTP clients instead.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fault_inputs import BadInput
from fault_plan import Plan
from fault_stack import Service, Tansu, code_version, snapshot_code
from fault_traffic import CODEC, Sender, Sent, generated_value

from preflog.kafka.topics import ensure_topics
from preflog.producers.generator import GeneratedEvent, TrafficProfile, generate
from preflog.settings import TopicSettings
from tests.integration.s3_helpers import CREDENTIALS, MotoServer
from tests.service_env import processor_env, sink_env
from tests.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from fault_api import ApiRun
    from fault_privacy import PrivacyRun

__all__ = ["REPO", "Run"]

#: the repository whose code the services run (this file is in benchmarks/fault_suite/)
REPO = Path(__file__).resolve().parents[2]


class Run:
    """One fault-suite run: the stack it starts and the traffic it sends.

    The faults it injects are in ``fault_schedule.py``, the reading back in
    ``fault_readback.py`` and the checks in ``fault_checks.py``; all of them
    work on a Run.

    Args:
        plan: What the run does.
        workdir: Where logs, state and results go.
    """

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan, self.dir = plan, workdir
        self.rng = random.Random(plan.seed)
        self.faults: Counter[str] = Counter()
        self.notes: list[str] = []
        self.crashes: list[str] = []
        suffix = uuid.uuid4().hex[:6]
        self.suffix = suffix
        self.topics = TopicSettings(
            **{role: f"{name}.{suffix}" for role, name in TopicSettings().all().items()},
            partitions=plan.partitions,
        )
        self.moto: MotoServer | None = None
        self.tansu: Tansu | None = None
        self.kafka_proxy: TcpProxy | None = None
        self.s3_proxy: TcpProxy | None = None
        self.processor: Service | None = None
        self.sink: Service | None = None
        self.sender: Sender | None = None
        self.privacy: PrivacyRun | None = None  # the keys, settings and erasure of a privacy run
        self.api: ApiRun | None = None  # preflog serve and its clients (--api)
        self.bucket = "audit"
        self.prefix = f"log-{suffix}"
        self.converged = False
        self.code_env: dict[str, str] = {}
        self.code_dir: Path | None = None
        self.version = code_version(REPO)

    # -- stack ---------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """The broker's address as clients see it: the proxy in front of Tansu."""
        assert self.kafka_proxy is not None
        return f"127.0.0.1:{self.kafka_proxy.port}"

    @property
    def kafka_config(self) -> dict[str, Any]:
        """The client config of the suite's own producers and consumers."""
        return {"bootstrap.servers": self.bootstrap}

    def start(self) -> None:
        """Starts moto, the proxies, Tansu, the topics, the processor, the sink (and the API), and the sender."""
        p = self.plan
        if p.snapshot:
            self.code_dir = self.dir / "code"
            self.code_env = snapshot_code(REPO, self.code_dir)
        self.moto = MotoServer(self.dir / "moto.log")
        self.moto.create_bucket(self.bucket)
        self.s3_proxy = TcpProxy(self.moto.port)
        self.kafka_proxy = TcpProxy(1)
        if p.broker_storage == "s3":
            self.moto.create_bucket("tansu")
        storage = "s3://tansu/" if p.broker_storage == "s3" else "memory://tansu/"
        self.tansu = Tansu(self.moto, storage, self.kafka_proxy.port, self.dir / "broker.log")
        self.kafka_proxy.target = self.tansu.port
        self.tansu.start()
        ensure_topics(self.kafka_config, self.topics.all().values(), p.partitions)
        if p.privacy:
            from fault_privacy import setup

            self.privacy = setup(self)
        topics = self.topics.all()
        penv = processor_env(
            self.bootstrap,
            topics,
            self.dir / "state",
            app_id=f"preflog-faults-{uuid.uuid4().hex[:8]}",
            window_s=p.window_s,
            grace_s=p.grace_s,
            idle_timeout_s=p.idle_timeout_s,
            store=p.store,
            tick_interval_s=p.tick_interval_s,
        )
        penv.update(self.code_env)
        self.processor = Service("processor", ["process", "--loglevel", "info"], penv, self.dir, self.code_dir)
        senv = sink_env(
            self.bootstrap,
            topics,
            group_id=f"preflog-sink-faults-{uuid.uuid4().hex[:8]}",
            url=f"s3://{self.bucket}/{self.prefix}",
            max_rows=p.sink_max_rows,
            idle_flush_s=0.5,
            max_age_s=2,
            s3_endpoint_url=f"http://127.0.0.1:{self.s3_proxy.port}",
        )
        senv.update(CREDENTIALS)
        senv.update(self.code_env)
        self.sink = Service("sink", ["sink"], senv, self.dir, self.code_dir)
        self.processor.start()
        self.sink.start()
        self.sender = Sender(self.kafka_config, self.topics, self.privacy.settings if self.privacy else None)
        if p.api:
            from fault_api import ApiRun

            self.api = ApiRun(self)
            self.api.start()

    def close(self) -> None:
        """Kills every piece the run started (services with kill -9), whatever state it is in."""
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        for part in (self.sender, self.processor, self.sink, self.kafka_proxy, self.s3_proxy, self.tansu, self.moto):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.kill() if isinstance(part, Service) else part.close()  # checks are done: no need to wait

    # -- traffic -------------------------------------------------------------------------------

    def traffic(self) -> tuple[list[GeneratedEvent], datetime]:
        """The generated traffic and the event time it starts at.

        Returns:
            The events, and a start time far enough behind the wall clock that the movers close every window.
        """
        p = self.plan
        profile = TrafficProfile(
            requests=p.requests, rate=p.rate, feedback_delay_s=1.0, invalid=0.03, seed=p.seed, duplicates=0.05
        )
        # event times lag the wall clock by more than window + grace, so the closing movers (event time = now)
        # expire every open inference at once, and no event time is ever ahead of its Kafka timestamp
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=p.window_s + p.grace_s + 20)
        return generate(profile, start), start

    def send_traffic(self, events: list[GeneratedEvent], stop: threading.Event) -> None:
        """Sends ``events`` at their offsets in time from now, until done or ``stop`` is set.

        With privacy on, valid events go through the SDK's ``log_*`` (sealed); invalid ones are encoded here
        without validation, as always (unsealed: the SDK would refuse them). With ``--api`` the valid events
        are posted to ``preflog serve`` by HTTP clients instead (``fault_api.send_traffic``).
        """
        assert self.sender is not None
        if self.api is not None:
            from fault_api import send_traffic

            send_traffic(self, events, stop)
            return
        t0 = time.monotonic()
        for i, e in enumerate(events):
            delay = t0 + e.at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            if self.privacy is not None and e.event_type != "garbage" and not e.invalid_reason:
                try:
                    self.sender.send_event(f"gen:{i}", e)
                except Exception as exc:  # a finding (a valid event the SDK refused): its outcomes go missing
                    self.crashes.append(f"the SDK refused generated event gen:{i}: {type(exc).__name__}: {exc}")
                continue
            role, value = generated_value(e)
            self.sender.send(Sent(f"gen:{i}", role, e.key.encode(), value))

    def send_bad(self, records: list[BadInput]) -> None:
        """Sends the hostile ``records`` raw and counts them (companions apart) as a fault."""
        assert self.sender is not None
        for n, b in enumerate(records):
            item = Sent(f"bad:{n}:{b.kind}", b.role, b.key, b.value)
            b.sent_at = {"item": item}
            self.sender.send(item, raw=True)
        self.faults["bad inputs sent (raw)"] += sum(1 for b in records if not b.companion)

    def movers(self) -> set[tuple[str, int, int]]:
        """An inference and a PAIRWISE feedback per partition at event time now: stream time passes every window."""
        assert self.sender is not None
        now = datetime.now(timezone.utc)
        pairs = set()
        covered: set[int] = set()
        rng = random.Random(self.plan.seed + 1)
        while len(covered) < self.plan.partitions:
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            partition = zlib.crc32(rid.encode()) % self.plan.partitions  # librdkafka's consistent_random
            if partition in covered:
                continue
            covered.add(partition)
            inf = {
                "request_id": rid,
                "event_time": now,
                "prompt": "move stream time",
                "candidates": ["a", "b"],
                "model": {"name": "mover"},
            }
            fid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            fb = {
                "feedback_id": fid,
                "request_id": rid,
                "event_time": now,
                "kind": "PAIRWISE",
                "pairwise": {"chosen": 0, "rejected": 1},
                "source": {"type": "HUMAN_ANNOTATOR", "id": "mover"},
            }
            from preflog.schemas.events import feedback_record, inference_record

            self.sender.send(
                Sent(
                    "mover:inference", "inference", rid.encode(), CODEC.encode("InferenceEvent", inference_record(inf))
                )
            )
            self.sender.send(
                Sent("mover:feedback", "feedback", rid.encode(), CODEC.encode("FeedbackEvent", feedback_record(fb)))
            )
            pairs.add((fid, 0, 1))
        return pairs
