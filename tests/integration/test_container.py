"""The production image (deploy/container/Containerfile), built and run with podman.

The image is built from the real Containerfile on a Debian base made by debootstrap
(deploy/container/build.sh; no registry is needed, and the base is cached between runs). Then:
``preflog up --demo`` runs in one read-only container, and ``topics create``, ``process`` and
``sink`` run as separate containers of the same image against a broker on this machine. What
they write is read here, on the host, from the containers' volumes.

Every container and volume a test makes is removed when it ends, passed or failed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.kafka.topics import partition_counts
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings

from .processor_helpers import clean_traffic, expected_pairs

pytestmark = [pytest.mark.heavy, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "container"
IMAGE = "localhost/preflog:test"
BASE = "localhost/preflog-base:bookworm"
UID = "10001"
STOP_GRACE_S = 30


def podman_env() -> dict[str, str]:
    """This environment, with podman's settings for runners where its defaults fail (as build.sh sets them)."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    return env


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} ... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


class Podman:
    """Containers and volumes of one test, named uniquely and removed by :meth:`cleanup`."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def volume(self, role: str) -> str:
        """A new named volume: at first mount podman copies the image's /data into it (owner uid 10001)."""
        name = f"preflog-test-{role}-{self.tag}"
        self.volumes.append(name)
        podman("volume", "create", name)
        return name

    def run_args(self, role: str, env: dict[str, str], volume: str | None, network: str) -> list[str]:
        name = f"preflog-test-{role}-{self.tag}"
        self.containers.append(name)
        args = ["--name", name, "--read-only", "--network", network]
        if volume:
            args += ["-v", f"{volume}:/data"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        return args

    def run(
        self, role: str, command: list[str], env: dict[str, str], volume: str | None = None, network: str = "host"
    ) -> subprocess.CompletedProcess[str]:
        """Run ``preflog COMMAND`` in a container to its end (removed after)."""
        args = self.run_args(role, env, volume, network)
        return podman("run", "--rm", *args, IMAGE, *command, timeout=300, check=False)

    def start(self, role: str, command: list[str], env: dict[str, str], volume: str | None = None) -> str:
        """Start ``preflog COMMAND`` in a detached container on the host's network; returns its name."""
        args = self.run_args(role, env, volume, "host")
        podman("run", "-d", *args, IMAGE, *command)
        return args[1]

    def cleanup(self) -> None:
        for name in self.containers:
            podman("rm", "-f", "-t", "0", name, check=False)
        for name in self.volumes:
            podman("volume", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built from the repository by deploy/container/build.sh (the base only when missing)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is missing: apt-get install podman buildah debootstrap runc")
    started = time.monotonic()
    built = subprocess.run(
        [str(HERE / "build.sh"), IMAGE, BASE],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-5000:] + built.stderr[-5000:]
    size = podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()
    print(f"image {IMAGE}: built (base cached or made) in {time.monotonic() - started:.0f} s, {int(size) >> 20} MiB")
    return IMAGE


@pytest.fixture
def pods() -> Iterator[Podman]:
    p = Podman()
    try:
        yield p
    finally:
        p.cleanup()


def pair_ids(volume: str, under: str = "audit/pairs") -> list[str]:
    """pair_id of every row of the volume's Parquet files under ``under``, read here with pyarrow (repeats kept).

    The files come out through ``podman volume export`` (a tar of the volume), which works rootless too.
    """
    tar = subprocess.run(
        ["podman", "volume", "export", volume], env=podman_env(), capture_output=True, timeout=120, check=True
    ).stdout
    ids: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./")
            if member.isreg() and name.startswith(under + "/") and name.endswith(".parquet"):
                data = archive.extractfile(member)
                assert data is not None
                ids += pq.read_table(io.BytesIO(data.read()), columns=["pair_id"]).column("pair_id").to_pylist()
    return ids


def test_the_demo_runs_in_a_read_only_container_and_leaves_the_audit_log_in_its_volume(
    image: str, pods: Podman
) -> None:
    data = pods.volume("demo")
    started = time.monotonic()
    # --network none: the demo's broker, services and traffic all stay inside the container
    done = pods.run("demo", ["up", "--demo", "--duration", "30"], {}, volume=data, network="none")
    print(f"preflog up --demo --duration 30 in a container: {time.monotonic() - started:.0f} s")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    topic = re.search(r"^\W*preflog\.pairs\.v1\W+(\d+)\W*$", out, re.MULTILINE)  # the "records seen" table
    reported = re.search(r"^(\d+) pairs from ", out, re.MULTILINE)
    assert topic and reported, out[-5000:]

    ids = pair_ids(data)
    assert len(ids) > 0
    # the pairs topic as the demo counted it on the broker, the report's count, and the files read here agree
    assert len(ids) == len(set(ids)) == int(topic.group(1)) == int(reported.group(1))


def answers(port: int, path: str, within: float = 0) -> bool:
    """Whether http://127.0.0.1:PORT/PATH answers 200 (retried for ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def test_topics_processor_sink_and_api_run_as_containers_of_one_image(
    image: str, pods: Podman, broker: EmbeddedBroker
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{role: f"{name}.{suffix}" for role, name in TopicSettings().all().items()}, partitions=3)
    env = {
        "PREFLOG_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PREFLOG_TOPICS__PARTITIONS": "3",
        **{f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()},
        "PREFLOG_PROCESSOR__SESSION_TIMEOUT_S": "6",  # the embedded broker's group join waits half of it
    }
    created = pods.run("topics", ["topics", "create"], env)
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
    counts = partition_counts({"bootstrap.servers": broker.bootstrap_servers}, list(topics.all().values()))
    assert {name: counts.get(name) for name in topics.all().values()} == dict.fromkeys(topics.all().values(), 3)

    ports = {"processor": free_port(), "sink": free_port(), "api": free_port()}
    processor = pods.start(
        "process",
        ["process"],
        {
            **env,
            "PREFLOG_PROCESSOR__APP_ID": f"preflog-test-{suffix}",
            "PREFLOG_PROCESSOR__RECOVERY_CONSISTENCY_CHECK": "false",  # the embedded broker's high watermarks
            "PREFLOG_PROCESSOR__WINDOW_S": "600",
            "PREFLOG_PROCESSOR__GRACE_S": "60",
            "PREFLOG_PROCESSOR__TICK_INTERVAL_S": "0.5",
            "PREFLOG_PROCESSOR__METRICS_PORT": str(ports["processor"]),
        },
        volume=pods.volume("processor"),  # its rocksdb tables: the only place it writes
    )
    audit = pods.volume("sink")
    sink = pods.start(
        "sink",
        ["sink"],
        {
            **env,
            "PREFLOG_SINK__GROUP_ID": f"preflog-sink-test-{suffix}",
            "PREFLOG_SINK__IDLE_FLUSH_S": "1",
            "PREFLOG_SINK__METRICS_PORT": str(ports["sink"]),
        },
        volume=audit,
    )
    api = pods.start("serve", ["serve"], {**env, "PREFLOG_API__PORT": str(ports["api"])}, volume=pods.volume("api"))
    for name in (processor, sink, api):
        assert podman("exec", name, "id", "-u").stdout.strip() == UID
        assert podman("inspect", "--format", "{{.Config.User}}", name).stdout.strip().split(":")[0] == UID

    events = clean_traffic(200)
    expected = expected_pairs(events)
    with PreflogProducer({"bootstrap.servers": broker.bootstrap_servers}, SingleObjectCodec(), topics) as log:
        send_traffic(events, log, pace=False)

    ids: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ids = pair_ids(audit)
        if set(ids) >= expected:
            break
        for name in (processor, sink, api):
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running", f"{name} is {state}:\n{podman('logs', name, check=False).stderr[-5000:]}"
        time.sleep(2)
    assert set(ids) >= expected, f"{len(set(ids) & expected)} of {len(expected)} pairs in the audit log"
    assert answers(ports["processor"], "/metrics") and answers(ports["sink"], "/metrics")
    assert answers(ports["api"], "/healthz", within=30)

    for name in (api, processor, sink):  # the processor before the sink: the sink writes whatever is left, and commits
        started = time.monotonic()
        podman("stop", "-t", str(STOP_GRACE_S), name, timeout=STOP_GRACE_S + 30)
        took = time.monotonic() - started
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name, check=False)
        said = logs.stdout + logs.stderr
        assert took < STOP_GRACE_S, f"{name} took {took:.1f} s to stop (then SIGKILL):\n{said[-5000:]}"
        assert code == "0", f"{name} exited {code} on SIGTERM after {took:.1f} s:\n{said[-5000:]}"
        if name == api:  # a graceful stop, then serve's cleanup (the producer flushed and closed)
            assert "Finished server process" in said and "preflog API stopped" in said, said[-5000:]

    ids = pair_ids(audit)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} pairs written more than once"
    assert set(ids) == expected
