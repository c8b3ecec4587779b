"""The Kubernetes manifests run for real: ``podman kube play`` of the topics Job, the processor and the sink.

The base (deploy/k8s/base) is rendered with ``kubectl kustomize`` and played by podman against the
embedded broker on this machine: the topics Job's pod creates the topics, then the processor's and the
sink's pods join and write, and every pair the SDK's traffic makes reaches the Parquet audit log exactly
once. The pods keep the manifests' image, args, ConfigMap, security contexts (uid 10001, read-only root,
no capabilities), the /tmp emptyDir and the processor's state claim. What podman 4 cannot play is adapted,
and only that: the StatefulSet and the Job become Pods (podman plays Pods and Deployments), the pods use
the host's network (the broker listens on 127.0.0.1) with free metrics ports, the empty credentials Secret
is left out (podman looks secrets up in its own store), probes are left out (podman runs an httpGet probe as
``curl`` inside the container, and the image has none: the test calls /healthz and /readyz from the host
instead), and the ConfigMap points at the test's broker, topics and a file:// audit log on a host directory.

Needs podman and the image (deploy/container/build.sh): skipped, saying which, where either is missing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflog.deploy.broker import EmbeddedBroker, free_port
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings

from .processor_helpers import clean_traffic, expected_pairs

yaml = pytest.importorskip("yaml", reason="PyYAML is missing: pip install PyYAML")

pytestmark = [pytest.mark.heavy, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "k8s" / "base"
IMAGE = os.environ.get("PREFLOG_TEST_IMAGE", "localhost/preflog:latest")
PODMAN = shutil.which("podman")
KUBECTL = shutil.which("kubectl")
#: podman's settings where its defaults fail (runc, no default ulimits): deploy/container/podman-env.sh
CONTAINERS_CONF = REPO / "deploy" / "container" / "containers.conf"


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and CONTAINERS_CONF.exists():
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    done = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def missing() -> str | None:
    if PODMAN is None:
        return "podman is missing: apt-get install podman"
    if KUBECTL is None:
        return "kubectl is missing (it renders the kustomization)"
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"the image {IMAGE} is missing: build it with deploy/container/build.sh (or set PREFLOG_TEST_IMAGE)"
    return None


def render() -> list[dict[str, Any]]:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return copy.deepcopy(found)


def as_pod(workload: dict[str, Any], name: str, restart: str) -> dict[str, Any]:
    """The workload's pod template as a Pod podman plays: host network, no probes, no Secret, a claim per template."""
    template = workload["spec"]["template"]
    spec = template["spec"]
    spec["hostNetwork"] = True
    spec["restartPolicy"] = restart
    for c in spec["containers"]:
        c["image"] = IMAGE
        c["envFrom"] = [ref for ref in c.get("envFrom", []) if "secretRef" not in ref]
        c.pop("livenessProbe", None)
        c.pop("readinessProbe", None)
        # podman maps a declared port even on the host's network, where it refuses to: the settings move it
        c.pop("ports", None)
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        spec["volumes"].append(
            {
                "name": claim["metadata"]["name"],
                "persistentVolumeClaim": {"claimName": f"{name}-{claim['metadata']['name']}"},
            }
        )
    spec.pop("affinity", None)  # one node
    spec.pop("serviceAccountName", None)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": spec,
    }


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def wait_for(what: str, check: Any, timeout: float, logs: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"{what} within {timeout:.0f} s\n{logs()}")


class Played:
    """The pods, volumes and files this test made, removed whatever happens."""

    def __init__(self, work: Path, suffix: str) -> None:
        self.work, self.suffix = work, suffix
        self.files: list[Path] = []
        self.pods: list[str] = []
        self.volumes: list[str] = []

    def play(self, name: str, *docs: dict[str, Any]) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        self.files.append(path)
        self.pods += [d["metadata"]["name"] for d in docs if d["kind"] == "Pod"]
        self.volumes += [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
        podman("kube", "play", str(path), timeout=300)
        return path

    def logs(self) -> str:
        out = []
        for pod in self.pods:
            for line in podman(
                "ps", "-a", "--pod", "--filter", f"pod={pod}", "--format", "{{.Names}}", check=False
            ).stdout.split():
                if not line.endswith("-infra"):
                    got = podman("logs", "--tail", "40", line, check=False)
                    out.append(f"--- {line}\n{got.stdout}{got.stderr}")
        return "\n".join(out)

    def teardown(self) -> None:
        for path in reversed(self.files):
            podman("kube", "down", str(path), check=False, timeout=120)
        for pod in self.pods:
            podman("pod", "rm", "-f", "-t", "5", pod, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "-f", volume, check=False)


@pytest.fixture
def played(tmp_path: Path) -> Iterator[Played]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    p = Played(tmp_path, uuid.uuid4().hex[:8])
    try:
        yield p
    finally:
        p.teardown()


def test_the_manifests_play_pairs_into_the_audit_log(broker: EmbeddedBroker, played: Played, tmp_path: Path) -> None:
    objects = render()
    suffix = played.suffix
    topics = TopicSettings(
        **{role: f"{name}.k8s-{suffix}" for role, name in TopicSettings().all().items()}, partitions=3
    )
    audit = tmp_path / "audit"
    audit.mkdir()
    audit.chmod(0o777)  # the image's user (uid 10001) writes the audit log
    ports = {"processor": free_port(), "sink": free_port()}

    settings = find(objects, "ConfigMap", "preflog-settings")
    settings["metadata"]["name"] = f"preflog-settings-{suffix}"
    settings["data"].update(
        {
            "PREFLOG_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PREFLOG_TOPICS__PARTITIONS": str(topics.partitions),
            "PREFLOG_TOPICS__REPLICATION_FACTOR": "1",
            **{f"PREFLOG_TOPICS__{role.upper()}": name for role, name in topics.all().items()},
            "PREFLOG_PROCESSOR__APP_ID": f"preflog-k8s-{suffix}",
            "PREFLOG_PROCESSOR__METRICS_PORT": str(ports["processor"]),
            # the embedded broker: high watermarks reported low, fetches answered only at their deadline
            "PREFLOG_PROCESSOR__RECOVERY_CONSISTENCY_CHECK": "false",
            "PREFLOG_PROCESSOR__FETCH_MAX_WAIT_MS": "100",
            "PREFLOG_PROCESSOR__SESSION_TIMEOUT_S": "6",
            "PREFLOG_SINK__GROUP_ID": f"preflog-sink-k8s-{suffix}",
            "PREFLOG_SINK__METRICS_PORT": str(ports["sink"]),
            "PREFLOG_SINK__URL": "file:///audit",
            "PREFLOG_SINK__IDLE_FLUSH_S": "1",
        }
    )

    def pod(kind: str, name: str, pod_name: str, restart: str) -> dict[str, Any]:
        p = as_pod(find(objects, kind, name), pod_name, restart)
        for c in p["spec"]["containers"]:
            for ref in c["envFrom"]:
                ref["configMapRef"]["name"] = settings["metadata"]["name"]
        return p

    # the Job: `preflog topics create` in the image, with the manifests' settings
    job = pod("Job", "preflog-topics", f"preflog-topics-{suffix}", "Never")
    played.play("topics", settings, job)
    wait_for(
        "the topics Job's pod to finish",
        lambda: (
            podman("pod", "inspect", job["metadata"]["name"], "--format", "{{.State}}", check=False).stdout.strip()
            in ("Exited", "Stopped")
        ),
        120,
        played.logs,
    )
    state = podman("inspect", f"{job['metadata']['name']}-topics", "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0", played.logs()

    processor = pod("StatefulSet", "preflog-processor", f"preflog-processor-{suffix}-0", "Always")
    claim = processor["spec"]["volumes"][-1]["persistentVolumeClaim"]["claimName"]
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    sink = pod("Deployment", "preflog-sink", f"preflog-sink-{suffix}", "Always")
    sink["spec"]["volumes"].append({"name": "audit", "hostPath": {"path": str(audit), "type": "Directory"}})
    sink["spec"]["containers"][0]["volumeMounts"].append({"name": "audit", "mountPath": "/audit"})
    played.play("services", settings, pvc, processor, sink)

    for what, port, path in (
        ("processor", ports["processor"], "/readyz"),
        ("sink", ports["sink"], "/readyz"),
    ):
        wait_for(f"the {what}'s {path} to answer 200", lambda p=port, u=path: probe(p, u)[0] == 200, 120, played.logs)
        assert probe(port, "/healthz")[0] == 200

    for name in (f"{processor['metadata']['name']}-processor", f"{sink['metadata']['name']}-sink"):
        # the security contexts held: the image's user, a read-only root, no capabilities
        got = podman("inspect", name, "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.EffectiveCaps}}")
        assert got.stdout.split() == ["10001:10001", "true", "[]"], got.stdout

    events = clean_traffic(200)
    expected = expected_pairs(events)
    with PreflogProducer({"bootstrap.servers": broker.bootstrap_servers}, SingleObjectCodec(), topics) as log:
        send_traffic(events, log, pace=False)

    def stored() -> Counter[str]:
        import pyarrow.dataset as ds

        files = sorted(str(p) for p in (audit / "pairs").rglob("*.parquet"))
        if not files:
            return Counter()
        table = ds.dataset(files, format="parquet").to_table(columns=["pair_id"])
        return Counter(table.column("pair_id").to_pylist())

    wait_for("every pair in the audit log", lambda: expected <= set(stored()), 180, played.logs)
    time.sleep(3)  # anything written twice would show now
    counts = stored()
    assert set(counts) == expected
    assert [pid for pid, n in counts.items() if n != 1] == []

    # SIGTERM in the pod as the kubelet sends it, with the manifests' grace period
    grace = find(objects, "StatefulSet", "preflog-processor")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    started = time.monotonic()
    podman("pod", "stop", "-t", str(grace), processor["metadata"]["name"], timeout=grace + 30)
    took = time.monotonic() - started
    exited = podman(
        "inspect", f"{processor['metadata']['name']}-processor", "--format", "{{.State.ExitCode}}"
    ).stdout.strip()
    assert exited == "0", (
        f"the processor exited {exited} after {took:.1f} s (137: killed at the grace period)\n{played.logs()}"
    )
    assert took < grace
    print(json.dumps({"processor_pod_stop_s": round(took, 2), "pairs": len(expected)}))
