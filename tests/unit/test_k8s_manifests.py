"""The Kubernetes manifests (deploy/k8s): rendered by kustomize, valid against Kubernetes' schemas, and true to preflog.

Rendering is ``kubectl kustomize`` (kustomize v5 built into kubectl); validation is offline, with the
JSON schemas the ``kubernetes-validate`` package carries, in strict mode (an unknown field is an error).
Then preflog's own rules: every ConfigMap key is a real setting and no secret is in it, every container
has requests and limits and runs as the image's non-root user on a read-only root, probes reach the ports
the settings open, and the processor's grace period covers its measured shutdown.
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

import pytest
from pydantic import BaseModel, SecretStr

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


def test_the_configmap_makes_valid_settings(rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PREFLOG_")]:
        monkeypatch.delenv(name)
    for name, value in settings_env(rendered).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
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
    assert resource_problems(broken) == ["Deployment/preflog-sink/sink: memory request 512Mi, limit None"]
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
