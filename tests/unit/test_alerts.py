"""The Prometheus alerting rules (deploy/prometheus/alerts.yml) pass their promtool tests, and name real metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from preflog.kafka import lag
from preflog.processors import metrics as processor_metrics
from preflog.sinks import metrics as sink_metrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: apt-get install prometheus (Debian's package ships it)"
)


@needs_promtool
def test_the_rules_are_valid_and_pass_their_unit_tests() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_preflog_metric_an_alert_reads_is_exported() -> None:
    exported = {name for module in (processor_metrics, sink_metrics, lag) for name in _families(module)}
    used = set(re.findall(r"\bpreflog_[a-z_]+", (RULES / "alerts.yml").read_text()))
    assert used and used <= exported, used - exported


def _families(module: object) -> set[str]:
    """The names a counter, gauge or histogram is scraped under (a counter's ``_total`` included)."""
    out = set()
    for metric in vars(module).values():
        if isinstance(metric, type):
            continue  # the classes the module imports
        name = getattr(metric, "_name", None)
        kind = getattr(metric, "_type", None)
        if isinstance(name, str):
            out |= {name, f"{name}_total"} if kind == "counter" else {name}
    return out
