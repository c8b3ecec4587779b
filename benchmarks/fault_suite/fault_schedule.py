"""The faults a run injects, in a shuffled schedule: kill -9 of each service, broker restarts, network cuts.

Every function takes the :class:`~fault_run.Run` it acts on and counts what
it did in ``run.faults``. :func:`watchdog` restarts a service that exited by
itself and records it as a crash (a finding of the run).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fault_plan import log

from tests.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from fault_run import Run

__all__ = ["READY", "broker_steps", "schedule", "watchdog"]

READY = "[^Worker]: Ready"  # Faust's log line when the worker has recovered its tables


def watchdog(run: Run) -> None:
    """A service that exited on its own is a finding; it is restarted."""
    for service in (run.processor, run.sink):
        if service is not None and service.proc is not None and not service.alive():
            tail = service.log.read_text(errors="replace").splitlines()[-15:]
            run.crashes.append(
                f"{service.name} exited on its own (code {service.proc.returncode}): " + " | ".join(tail)[-1500:]
            )
            log(f"{service.name} exited on its own (code {service.proc.returncode}); restarting")
            run.faults[f"{service.name} crashed by itself"] += 1
            service.start()
    if run.api is not None:  # --api: preflog serve too (under its lock: a kill and restart may be under way)
        run.api.watch()


def kill_processor(run: Run) -> None:
    """kill -9 once the worker is up and joining (at a random moment after Ready), or during its start-up."""
    assert run.processor is not None
    if run.rng.random() < 0.7:
        ready = run.processor.wait_ready(READY, timeout=90)
        time.sleep(run.rng.uniform(0.0, 5.0))
        label = "running, after Ready" if ready else "not Ready after 90 s"
    else:
        time.sleep(run.rng.uniform(0.5, 4.0))
        label = "running" if run.processor.ready(READY) else "during start-up/recovery"
    run.processor.kill()
    run.faults[f"kill -9 processor ({label})"] += 1
    run.processor.start()


def kill_sink(run: Run) -> None:
    """kill -9 of the sink, half the time right after it writes a new file, then a restart."""
    assert run.sink is not None
    if run.rng.random() < 0.5:
        if wait_new_file(run, timeout=10):
            run.sink.kill()
            run.faults["kill -9 sink (right after a new file)"] += 1
        else:
            run.sink.kill()
            run.faults["kill -9 sink (no new file seen in 10 s)"] += 1
    else:
        time.sleep(run.rng.uniform(0, 3))
        run.sink.kill()
        run.faults["kill -9 sink (random moment)"] += 1
    run.sink.start()


def wait_new_file(run: Run, timeout: float) -> bool:
    """Whether a new Parquet file appears in the audit log within ``timeout`` seconds."""
    assert run.moto is not None
    client = run.moto.client()
    before = count_parquet(run, client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_parquet(run, client) > before:
            return True
        time.sleep(0.02)
    return False


def count_parquet(run: Run, client: Any) -> int:
    """How many Parquet files the audit log holds, listed with the boto3 ``client``."""
    n = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=run.prefix):
        n += sum(1 for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
    return n


def restart_broker(run: Run) -> None:
    """kill -9 of the broker and a restart on the same port (its log is in S3 when the plan says so)."""
    assert run.tansu is not None
    run.tansu.kill()
    time.sleep(run.rng.uniform(0.5, 2.0))
    t0 = time.monotonic()
    run.tansu.restart()
    run.notes.append(f"broker restarted on port {run.tansu.port} in {time.monotonic() - t0:.1f} s")
    run.faults["kill -9 broker + restart (log in S3)"] += 1


def cut(run: Run, proxy: TcpProxy | None, what: str, mode: str, seconds: float) -> None:
    """Cuts ``proxy`` (``mode`` refuse or blackhole) for ``seconds``, then restores it; ``what`` names it."""
    assert proxy is not None
    proxy.cut(mode)  # type: ignore[arg-type]
    log(f"{what} cut ({mode}) for {seconds:.0f} s")
    time.sleep(seconds)
    proxy.restore()
    run.faults[f"{what} cut, {mode}, {seconds:.0f} s"] += 1


def schedule(run: Run) -> list[tuple[str, Callable[[], None]]]:
    """The plan's faults, shuffled by the run's random generator, as (name, step) pairs.

    The step "send bad inputs" comes a third of the way in and does nothing
    itself: ``run_plan`` builds the bad inputs when it reaches it, with event
    times near the traffic's. With ``--api`` the broker's faults are not in it
    (:func:`broker_steps`: they are run during the traffic by ``fault_api``).
    """
    p = run.plan
    steps: list[tuple[str, Callable[[], None]]] = []
    steps += [("kill processor", functools.partial(kill_processor, run))] * p.processor_kills
    steps += [("kill sink", functools.partial(kill_sink, run))] * p.sink_kills
    if not p.api:  # with --api the broker faults come while the HTTP clients send (fault_api.broker_faults)
        steps += broker_steps(run)
    for mode, seconds in p.s3_outages:
        steps.append((f"cut S3 {mode}", functools.partial(cut, run, run.s3_proxy, "object store", mode, seconds)))
    run.rng.shuffle(steps)
    steps.insert(len(steps) // 3, ("send bad inputs", lambda: None))  # built when sent: see run_plan
    return steps


def broker_steps(run: Run) -> list[tuple[str, Callable[[], None]]]:
    """The plan's broker faults as (name, step) pairs: kill -9 and restart, then each network cut."""
    p = run.plan
    steps: list[tuple[str, Callable[[], None]]] = []
    steps += [("restart broker", functools.partial(restart_broker, run))] * p.broker_restarts
    for mode, seconds in p.broker_cuts:
        steps.append(
            (f"cut broker {mode}", functools.partial(cut, run, run.kafka_proxy, "broker network", mode, seconds))
        )
    return steps
