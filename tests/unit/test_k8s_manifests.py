"""The Kubernetes manifests (deploy/k8s): rendered by kustomize, valid against Kubernetes' schemas, and true to preflog.

Rendering is ``kubectl kustomize`` (kustomize v5 built into kubectl); validation is offline, with the
JSON schemas the ``kubernetes-validate`` package carries, in strict mode (an unknown field is an error).
Then preflog's own rules: every ConfigMap key is a real setting and no secret is in it, every container
has requests and limits and runs as the image's non-root user on a read-only root, probes reach the ports
the settings open and wait longer than their handlers may, the processor's grace period covers its measured
shutdown, the sink's memory limit covers its dedupe windows and buffers, no Deployment an autoscaler scales
sets its replicas, and the sink replaces its pods without a surge.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydantic import BaseModel, SecretStr

from preflog.schemas.tables import TABLES
from preflog.settings import ApiSettings, ProcessorSettings, Settings, SinkSettings

yaml = pytest.importorskip("yaml", reason="PyYAML is missing: pip install PyYAML")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is missing: pip install kubernetes-validate"
)

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is missing (it renders kustomizations): apt-get install kubectl"
)

#: the Kubernetes versions the manifests are checked against: the oldest one supported, and the newest schemas
VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())

#: seconds from SIGTERM to exit, the longest measured (2 cores, the embedded broker; deploy/k8s/README.md):
#: `preflog process` (RocksDB store, 4 partitions, session timeout 10 s) 1.27-1.57 s idle or joining under load
#: (6 runs), 3.52 s after 20,000 requests, 1.83-4.0 s during start-up and recovery; the processor's pod under
#: `podman pod stop` 1.5-1.8 s (tests/integration/test_kube_play.py). `preflog sink` 0.22-0.57 s (6 runs).
MEASURED_SHUTDOWN_S = {"processor": 4.0, "sink": 0.6}
#: a grace period is at least this many times the measured shutdown: a real cluster adds round trips
GRACE_MARGIN = 5

#: the image (deploy/container/Containerfile): its user and where it may write
IMAGE_UID = 10001
WRITABLE = {"/tmp", "/data"}

OVERLAY_IMAGE = "registry.example.com/ml-platform/preflog:0.1.0"

#: bytes per id in a sink's dedupe window (an OrderedDict of 1,000,000 ids measured about 160 MB)
SINK_ID_BYTES = 160
#: the sink process without its windows and buffers (peak RSS 326 MB on a backlog; deploy/k8s/README.md)
SINK_BASE_BYTES = 300 * 10**6
#: seconds a probe waits beyond what its handler may take
PROBE_MARGIN_S = 2


def render(path: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders from ``path``."""
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(K8S / "base")


@pytest.fixture(scope="module")
def example() -> list[dict[str, Any]]:
    return render(K8S / "overlays" / "example")


@pytest.fixture(params=["base", "example"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return copy.deepcopy(request.getfixturevalue(request.param))


# ---- schemas ----


def schema_errors(objects: list[dict[str, Any]], version: str) -> list[str]:
    """Each object that Kubernetes' schema of ``version`` refuses, with the reason."""
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    return errors


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(rendered: list[dict[str, Any]], version: str) -> None:
    kinds = {o["kind"] for o in rendered}
    assert {"ConfigMap", "Secret", "Job", "StatefulSet", "Deployment", "Service"} <= kinds
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    assert schema_errors(rendered, version) == []


def test_the_validator_refuses_a_broken_manifest(base: list[dict[str, Any]]) -> None:
    """Offline validation is no rubber stamp: a wrong type, an unknown field and a missing field each fail."""
    wrong_type = copy.deepcopy(workload(base, "StatefulSet", "preflog-processor"))
    wrong_type["spec"]["replicas"] = "two"
    typo = copy.deepcopy(workload(base, "Deployment", "preflog-sink"))
    typo["spec"]["template"]["spec"]["containers"][0]["resource"] = typo["spec"]["template"]["spec"]["containers"][
        0
    ].pop("resources")
    missing = copy.deepcopy(workload(base, "Deployment", "preflog-api"))
    del missing["spec"]["selector"]
    for broken in (wrong_type, typo, missing):
        assert len(schema_errors([broken], VERSIONS[-1])) == 1, broken["metadata"]["name"]


def test_kustomize_refuses_a_patch_of_nothing(tmp_path: Path) -> None:
    """The renderer is real kustomize: a patch naming no object of the base is an error, not a no-op."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S / 'base', overlay)}]\npatches:\n  - path: p.yaml\n", encoding="utf-8"
    )
    (overlay / "p.yaml").write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: preflog-procesor}\nspec: {replicas: 3}\n",
        encoding="utf-8",
    )
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "preflog-procesor" in done.stderr


# ---- preflog's rules ----


def workload(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``Kind/name`` -> pod spec, for every object that makes pods."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet")
    }


def settings_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return workload(objects, "ConfigMap", "preflog-settings")["data"]


def setting_field(env: str) -> tuple[type[BaseModel], str] | None:
    """The (model, field) a ``PREFLOG_*`` variable sets, or None when it names no setting."""
    model: type[BaseModel] = Settings
    parts = env.removeprefix("PREFLOG_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        if i == len(parts) - 1:
            return model, part
        nested = field.annotation
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return None
        model = nested
    return None


def secret_settings(model: type[BaseModel] = Settings, prefix: str = "PREFLOG_") -> set[str]:
    """The variables of every SecretStr setting."""
    out = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= secret_settings(annotation, env + "__")
        elif annotation is SecretStr or SecretStr in typing.get_args(annotation):
            out.add(env)
    return out


def test_every_configmap_key_is_a_setting_and_none_is_a_secret(rendered: list[dict[str, Any]]) -> None:
    """Settings ignore unknown variables, so a misspelt key would be silently lost: each must name a field."""
    env = settings_env(rendered)
    assert [k for k in env if not k.startswith("PREFLOG_") or setting_field(k) is None] == []
    assert secret_settings() >= {"PREFLOG_KAFKA__SASL_PASSWORD", "PREFLOG_SINK__AWS_SECRET_ACCESS_KEY"}
    assert set(env) & secret_settings() == set()


def configured(objects: list[dict[str, Any]]) -> Settings:
    """The settings a pod of ``objects`` reads: the ConfigMap's variables and none of this process's."""
    env = {n: v for n, v in os.environ.items() if not n.startswith("PREFLOG_")}
    with mock.patch.dict(os.environ, {**env, **settings_env(objects)}, clear=True):
        return Settings()


def test_the_configmap_makes_valid_settings(rendered: list[dict[str, Any]]) -> None:
    settings = configured(rendered)
    assert settings.processor.metrics_host == settings.sink.metrics_host == settings.api.host == "0.0.0.0"
    assert str(settings.data_dir) == "/data"
    assert settings.audit_url().startswith("s3://")


def test_the_secret_ships_empty_and_names_every_secret_setting(rendered: list[dict[str, Any]]) -> None:
    secret = workload(rendered, "Secret", "preflog-credentials")
    assert not secret.get("data") and not secret.get("stringData"), "no credentials in git"
    named = set(secret["metadata"]["annotations"]["preflog.dev/keys"].split())
    assert secret_settings() <= named
    assert [n for n in named if setting_field(n) is None] == []
    for name, spec in pod_specs(rendered).items():
        for c in spec["containers"]:
            refs = {ref.get("secretRef", {}).get("name") for ref in c.get("envFrom", [])}
            assert "preflog-credentials" in refs, f"{name}/{c['name']}"


CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
MEMORY_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


def quantity(resource: str, value: str | int) -> float:
    text = str(value)
    if resource == "cpu":
        m = CPU.match(text)
        assert m, f"cpu {text!r}"
        return float(m.group(1)) / (1000 if m.group(2) else 1)
    m = MEMORY.match(text)
    assert m, f"memory {text!r}"
    return int(m.group(1)) * MEMORY_UNITS[m.group(2)]


def resource_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Containers without cpu and memory requests and limits, or with a limit below its request."""
    problems = []
    for name, spec in pod_specs(objects).items():
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            for r in ("cpu", "memory"):
                req, lim = res.get("requests", {}).get(r), res.get("limits", {}).get(r)
                if req is None or lim is None:
                    problems.append(f"{name}/{c['name']}: {r} request {req}, limit {lim}")
                elif quantity(r, lim) < quantity(r, req):
                    problems.append(f"{name}/{c['name']}: {r} limit {lim} < request {req}")
    return problems


def security_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Pods or containers that may run as root, escalate, keep capabilities or write to their root filesystem."""
    problems = []
    for name, spec in pod_specs(objects).items():
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("runAsUser") != IMAGE_UID:
            problems.append(f"{name}: runAsNonRoot/runAsUser {IMAGE_UID}")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: a service account token it does not need")
        if spec.get("hostNetwork") or spec.get("hostPID"):
            problems.append(f"{name}: host namespaces")
        claims = {
            t["metadata"]["name"] for t in objects_of(objects, name).get("spec", {}).get("volumeClaimTemplates", [])
        }
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}/{c['name']}: readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}/{c['name']}: allowPrivilegeEscalation")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}/{c['name']}: capabilities not dropped")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for path in sorted(WRITABLE):
                volume = mounts.get(path)
                writable = volume in claims or "emptyDir" in volumes.get(volume or "", {})
                if not writable:
                    problems.append(f"{name}/{c['name']}: {path} is not a writable volume")
    return problems


def objects_of(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    kind, _, obj = name.partition("/")
    return workload(objects, kind, obj)


def test_every_container_has_requests_and_limits(rendered: list[dict[str, Any]]) -> None:
    assert resource_problems(rendered) == []


def test_every_pod_runs_as_the_image_user_on_a_read_only_root(rendered: list[dict[str, Any]]) -> None:
    assert security_problems(rendered) == []


def test_the_rules_catch_a_broken_manifest(base: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(base)
    sink = workload(broken, "Deployment", "preflog-sink")["spec"]["template"]["spec"]
    del sink["containers"][0]["resources"]["limits"]["memory"]
    sink["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    processor = workload(broken, "StatefulSet", "preflog-processor")["spec"]["template"]["spec"]
    processor["containers"][0]["volumeMounts"] = [
        m for m in processor["containers"][0]["volumeMounts"] if m["mountPath"] != "/tmp"
    ]
    processor["securityContext"]["runAsUser"] = 0
    assert resource_problems(broken) == ["Deployment/preflog-sink/sink: memory request 1Gi, limit None"]
    assert sorted(security_problems(broken)) == [
        "Deployment/preflog-sink/sink: readOnlyRootFilesystem",
        "StatefulSet/preflog-processor/processor: /tmp is not a writable volume",
        f"StatefulSet/preflog-processor: runAsNonRoot/runAsUser {IMAGE_UID}",
    ]


def container_port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    found = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(found) == 1, f"{container['name']}: no port named {port}"
    return int(found[0])


#: workload -> (the setting of its port, its default, liveness path, readiness path)
PROBES = {
    "StatefulSet/preflog-processor": (
        "PREFLOG_PROCESSOR__METRICS_PORT",
        ProcessorSettings().metrics_port,
        "/healthz",
        "/readyz",
    ),
    "Deployment/preflog-sink": ("PREFLOG_SINK__METRICS_PORT", SinkSettings().metrics_port, "/healthz", "/readyz"),
    "Deployment/preflog-api": ("PREFLOG_API__PORT", ApiSettings().port, "/healthz", "/healthz"),
}


def test_probes_and_scrapes_reach_the_ports_the_settings_open(rendered: list[dict[str, Any]]) -> None:
    env = settings_env(rendered)
    specs = pod_specs(rendered)
    for name, (setting, default, live, ready) in PROBES.items():
        port = int(env.get(setting, default))
        container = specs[name]["containers"][0]
        for probe, path in (("livenessProbe", live), ("readinessProbe", ready)):
            get = container[probe]["httpGet"]
            assert (get["path"], container_port(container, get["port"])) == (path, port), f"{name} {probe}"
        template = objects_of(rendered, name)["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port), name
        labels = template["metadata"]["labels"]
        services = [
            s
            for s in rendered
            if s["kind"] == "Service" and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
        ]
        assert len(services) == 1, name
        (service,) = services
        assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        assert [container_port(container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]


def test_selectors_of_budgets_and_autoscaler_match_their_pods(rendered: list[dict[str, Any]]) -> None:
    workloads = [o for o in rendered if o["kind"] in ("Deployment", "StatefulSet")]
    for o in workloads:
        assert o["spec"]["selector"]["matchLabels"].items() <= o["spec"]["template"]["metadata"]["labels"].items()
    budgets = [o for o in rendered if o["kind"] == "PodDisruptionBudget"]
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, w["metadata"]["name"]
    (hpa,) = [o for o in rendered if o["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert workload(rendered, target["kind"], target["name"])


def test_processor_state_replicas_and_grace(rendered: list[dict[str, Any]]) -> None:
    processor = workload(rendered, "StatefulSet", "preflog-processor")
    spec = processor["spec"]
    partitions = int(settings_env(rendered).get("PREFLOG_TOPICS__PARTITIONS", 4))
    assert 1 <= spec["replicas"] <= partitions, "replicas beyond the partitions idle"
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in spec["template"]["spec"]["containers"][0]["volumeMounts"]}
    data_dir = settings_env(rendered)["PREFLOG_DATA_DIR"]
    assert mounts[claim["metadata"]["name"]] == data_dir, "the state (<data_dir>/processor) is on the claim"
    assert "PREFLOG_PROCESSOR__STATE_DIR" not in settings_env(rendered)
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= GRACE_MARGIN * MEASURED_SHUTDOWN_S["processor"]
    sink = workload(rendered, "Deployment", "preflog-sink")["spec"]["template"]["spec"]
    assert sink["terminationGracePeriodSeconds"] >= GRACE_MARGIN * MEASURED_SHUTDOWN_S["sink"]
    affinity = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )


def sink_memory_needed(settings: Settings) -> int:
    """Bytes a sink owning every output partition may hold (base/sink.yaml has the formula).

    Per partition of each table it stores: the dedupe window's ids (tables with an id column), which grow
    by up to one batch (``max_rows``) before the trim, and the input buffered up to ``max_bytes``, converted
    to Arrow at the cut (twice that). Every partition, because a sink alone may own them all.
    """
    sink = settings.sink
    per_partition = sum(
        (sink.dedupe_window + sink.max_rows) * SINK_ID_BYTES * bool(TABLES[t].id_column) + 2 * sink.max_bytes
        for t in sink.tables
    )
    return settings.topics.partitions * per_partition + SINK_BASE_BYTES


def sink_memory_problems(objects: list[dict[str, Any]]) -> list[str]:
    container = workload(objects, "Deployment", "preflog-sink")["spec"]["template"]["spec"]["containers"][0]
    limit = quantity("memory", container["resources"]["limits"]["memory"])
    needed = sink_memory_needed(configured(objects))
    return [] if limit >= needed else [f"sink memory limit {limit / 1e6:,.0f} MB < {needed / 1e6:,.0f} MB needed"]


def autoscaled_replicas_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Workloads an autoscaler scales that set spec.replicas (each apply would reset the autoscaler's count)."""
    problems = []
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if "replicas" in workload(objects, target["kind"], target["name"])["spec"]:
            problems.append(f"{target['kind']}/{target['name']}: spec.replicas under HorizontalPodAutoscaler")
    return problems


def probe_timeout_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Processor probes that give up before their handler answers.

    /healthz waits up to ``liveness_timeout_s`` for the event loop; /readyz runs the liveness check, then
    the readiness check, each waiting as long.
    """
    within = configured(objects).processor.liveness_timeout_s
    container = workload(objects, "StatefulSet", "preflog-processor")["spec"]["template"]["spec"]["containers"][0]
    problems = []
    for probe, trips in (("livenessProbe", 1), ("readinessProbe", 2)):
        timeout = container[probe].get("timeoutSeconds", 1)
        if timeout < trips * within + PROBE_MARGIN_S:
            problems.append(f"processor {probe}: timeoutSeconds {timeout} < {trips} x {within:g} + {PROBE_MARGIN_S}")
    return problems


def surge_problems(objects: list[dict[str, Any]]) -> list[str]:
    """The sink must not surge: with as many sinks as partitions a surge pod owns none and is never ready."""
    strategy = workload(objects, "Deployment", "preflog-sink")["spec"].get("strategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling.get("maxSurge", "25%") not in (0, "0%"):
        return [f"sink maxSurge {rolling.get('maxSurge', '25%')}"]
    return []


def test_the_sink_memory_limit_covers_its_windows_and_buffers(rendered: list[dict[str, Any]]) -> None:
    settings = configured(rendered)
    assert settings.sink.dedupe_window < SinkSettings().dedupe_window, "the default window needs gigabytes"
    assert sink_memory_problems(rendered) == []


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(rendered: list[dict[str, Any]]) -> None:
    assert [o for o in rendered if o["kind"] == "HorizontalPodAutoscaler"]
    assert autoscaled_replicas_problems(rendered) == []


def test_probes_wait_for_their_handlers_and_the_sink_does_not_surge(rendered: list[dict[str, Any]]) -> None:
    assert probe_timeout_problems(rendered) == []
    assert surge_problems(rendered) == []


def test_the_sizing_rules_catch_a_broken_manifest(base: list[dict[str, Any]], example: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(base)
    del settings_env(broken)["PREFLOG_SINK__DEDUPE_WINDOW"]  # back to 1,000,000 ids per partition
    workload(broken, "Deployment", "preflog-api")["spec"]["replicas"] = 2
    processor = workload(broken, "StatefulSet", "preflog-processor")["spec"]["template"]["spec"]["containers"][0]
    processor["livenessProbe"]["timeoutSeconds"] = 5
    processor["readinessProbe"]["timeoutSeconds"] = 3
    workload(broken, "Deployment", "preflog-sink")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1
    assert sink_memory_problems(broken) == ["sink memory limit 2,147 MB < 4,331 MB needed"]
    assert autoscaled_replicas_problems(broken) == [
        "Deployment/preflog-api: spec.replicas under HorizontalPodAutoscaler"
    ]
    assert probe_timeout_problems(broken) == [
        "processor livenessProbe: timeoutSeconds 5 < 1 x 5 + 2",
        "processor readinessProbe: timeoutSeconds 3 < 2 x 5 + 2",
    ]
    assert surge_problems(broken) == ["sink maxSurge 1"]
    # the processor's loop given longer: its probes must follow
    slower = copy.deepcopy(base)
    settings_env(slower)["PREFLOG_PROCESSOR__LIVENESS_TIMEOUT_S"] = "10"
    assert len(probe_timeout_problems(slower)) == 2
    # the example's 8 partitions with the base's sink limit (its patch left out)
    unpatched = copy.deepcopy(example)
    sink = workload(unpatched, "Deployment", "preflog-sink")["spec"]["template"]["spec"]["containers"][0]
    sink["resources"]["limits"]["memory"] = "2Gi"
    assert sink_memory_problems(unpatched) == ["sink memory limit 2,147 MB < 2,602 MB needed"]


def test_images_and_namespace(base: list[dict[str, Any]], example: list[dict[str, Any]]) -> None:
    def images(objects: list[dict[str, Any]]) -> set[str]:
        return {c["image"] for spec in pod_specs(objects).values() for c in spec["containers"]}

    assert images(base) == {"preflog:latest"}
    assert images(example) == {OVERLAY_IMAGE}
    cluster_scoped = {"Namespace"}
    assert all("namespace" not in o["metadata"] for o in base)
    assert {o["metadata"].get("namespace") for o in example if o["kind"] not in cluster_scoped} == {"preflog"}
    assert workload(example, "StatefulSet", "preflog-processor")["spec"]["replicas"] == 4
    assert settings_env(example)["PREFLOG_TOPICS__PARTITIONS"] == "8"
    labels = workload(example, "Namespace", "preflog")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
