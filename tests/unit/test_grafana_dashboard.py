"""The Grafana dashboard (deploy/grafana/preflog.json) queries only metrics and labels the code exports.

The exported names come from the processor's and the sink's metric modules through prometheus_client's own
text exposition (what Prometheus scrapes), so renaming a metric or a label in the code fails these tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from preflog.api import app as api_metrics
from preflog.api import ingest as api_ingest_metrics
from preflog.processors import metrics as processor_metrics
from preflog.producers import redact as sdk_metrics
from preflog.sinks import metrics as sink_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "preflog.json"
MODULES: tuple[ModuleType, ...] = (processor_metrics, sink_metrics, sdk_metrics, api_metrics, api_ingest_metrics)
#: labels Prometheus attaches to every scraped series (not the code's)
TARGET_LABELS = frozenset({"instance", "job"})
#: the label value of the throwaway child each labelled metric gets, so that it appears in the exposition
PROBE = "__grafana_dashboard_test__"
UNITS = frozenset({"ops", "s", "short"})
TITLES = {
    "Events in by topic",
    "Pairs and unpaired signals out",
    "Join latency (event time)",
    "State keys",
    "Duplicates ignored",
    "Refetched by topic",
    "Unmatched by reason",
    "Dead letters by error class",
    "Processor outputs vs sink intake",
    "Rows written by table",
    "Files written by table",
    "Sink duplicates skipped by table",
    "Sink write retries",
    "SDK redactions by kind",
    "API requests by status",
    "API events by outcome",
    "API request latency p99",
    "API events awaiting Kafka",
}

METRIC = re.compile(r"\bpreflog_[A-Za-z0-9_:]*")
MATCHERS = re.compile(r"\b(preflog_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")  # the dashboard uses by (...), never without (...)
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    """Every preflog sample name of the exposition (``_total``, ``_bucket``, ...) -> its label names."""
    return _exported_samples()


def _metric_objects() -> Iterator[MetricWrapperBase]:
    for module in MODULES:
        yield from (m for m in vars(module).values() if isinstance(m, MetricWrapperBase))


def _exported_samples() -> dict[str, frozenset[str]]:
    """Sample names and label names, read back from ``generate_latest(REGISTRY)`` as Prometheus would.

    A labelled metric exposes nothing until a child exists, so each gets one throwaway child while the
    registry is rendered; it is removed again afterwards.
    """
    probed: list[tuple[MetricWrapperBase, tuple[str, ...]]] = []
    try:
        for metric in _metric_objects():
            names = tuple(metric._labelnames)  # no public accessor; the attribute is stable across versions
            if names:
                metric.labels(*(PROBE for _ in names))
                probed.append((metric, tuple(PROBE for _ in names)))
        text = generate_latest(REGISTRY).decode("utf-8")
    finally:
        for metric, values in probed:
            metric.remove(*values)
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("preflog_"):
                samples.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in samples.items()}


def _family(sample: str) -> str:
    """The metric a sample belongs to: ``preflog_x_total`` -> ``preflog_x``, ``preflog_y_bucket`` -> ``preflog_y``."""
    return re.sub(r"_(total|created|bucket|count|sum)$", "", sample)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, rows included, with the panels of collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _graphs(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _panels(dashboard) if p["type"] != "row"]


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in _graphs(dashboard) for t in p["targets"]]


def test_dashboard_settings(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "preflog"
    assert dashboard["title"] == "preflog"
    assert dashboard["tags"] == ["preflog"]
    assert dashboard["refresh"] == "10s"
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_is_titled_described_and_has_a_unit(dashboard: dict[str, Any]) -> None:
    graphs = _graphs(dashboard)
    assert {p["title"] for p in graphs} == TITLES
    assert all(p["title"] for p in _panels(dashboard))
    for panel in graphs:
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in _panels(dashboard)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))


def test_grid_positions_fit_the_24_columns_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels(dashboard):
        pos = panel["gridPos"]
        x, y, w, h = (pos[k] for k in ("x", "y", "w", "h"))
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= 24, panel["title"]
        if panel["type"] == "row":
            assert (x, w, h) == (0, 24, 1), panel["title"]
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in cells, f"{panel['title']!r} overlaps {cells[cell]!r}"
            cells[cell] = panel["title"]


def test_the_probe_reads_real_names_from_the_exposition(exported: dict[str, frozenset[str]]) -> None:
    """The exposition names counters ``_total`` and histograms ``_bucket``/``_sum``/``_count``, with their labels."""
    assert exported["preflog_processor_events_in_total"] == {"topic"}
    assert exported["preflog_processor_join_latency_seconds_bucket"] == {"le"}
    assert "preflog_processor_join_latency_seconds_count" in exported
    assert "preflog_processor_state_keys" in exported
    assert exported["preflog_sink_rows_written_total"] == {"table"}
    assert "preflog_processor_events_in" not in exported  # a counter's bare name is never a series


def test_every_query_uses_exported_metrics(dashboard: dict[str, Any], exported: dict[str, frozenset[str]]) -> None:
    for title, target in _targets(dashboard):
        used = set(METRIC.findall(target["expr"]))
        assert used, f"{title!r}: no preflog metric in {target['expr']!r}"
        unknown = used - exported.keys()
        assert not unknown, f"{title!r} queries {sorted(unknown)}, which the code does not export"


def test_every_label_in_a_query_is_a_label_of_its_metrics(
    dashboard: dict[str, Any], exported: dict[str, frozenset[str]]
) -> None:
    def labels(metric: str) -> frozenset[str]:
        return exported.get(metric, frozenset()) | TARGET_LABELS

    for title, target in _targets(dashboard):
        expr = target["expr"]
        for metric, matchers in MATCHERS.findall(expr):
            for label in MATCHER_LABEL.findall(matchers):
                assert label in labels(metric), f"{title!r}: {metric} has no label {label!r}"
        grouped = {label.strip() for clause in GROUPING.findall(expr) for label in clause.split(",") if label.strip()}
        for metric in set(METRIC.findall(expr)):
            missing = grouped - labels(metric)
            assert not missing, f"{title!r}: {metric} has no label(s) {sorted(missing)} used in by (...)"
        legend = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        shown = grouped if GROUPING.search(expr) else set().union(*(labels(m) for m in METRIC.findall(expr)))
        assert legend <= shown, f"{title!r}: legend {target['legendFormat']!r} shows labels the query drops"


def test_every_exported_metric_has_a_panel(dashboard: dict[str, Any], exported: dict[str, frozenset[str]]) -> None:
    used = {_family(m) for _, t in _targets(dashboard) for m in METRIC.findall(t["expr"])}
    assert {_family(s) for s in exported} <= used
