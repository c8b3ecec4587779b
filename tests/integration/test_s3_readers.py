"""verify and export of an audit log on S3 (moto's server): the bytes and numbers of the same log on disk."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflog.cli import app
from preflog.sinks.storage import Storage

from ..unit.adversarial_log import adversarial_log
from ..unit.test_bounded_audit import _with_manifests
from .s3_helpers import CREDENTIALS, MotoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


def test_export_and_verify_read_a_log_on_s3_as_on_disk(tmp_path: Path, moto: MotoServer) -> None:
    root = tmp_path / "log"
    adversarial_log(root)
    _with_manifests(root)
    moto.create_bucket("audit")
    options = {"client_kwargs": {"endpoint_url": moto.endpoint}, "key": "testing", "secret": "testing"}
    remote = Storage("s3://audit/log", options)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        remote.put(str(path.relative_to(root)), path.read_bytes())
    env = {**CREDENTIALS, "PREFLOG_SINK__S3_ENDPOINT_URL": moto.endpoint}
    env |= {"PREFLOG_SINK__AWS_ACCESS_KEY_ID": "testing", "PREFLOG_SINK__AWS_SECRET_ACCESS_KEY": "testing"}
    runner = CliRunner()
    for fmt, flags in (("trl", ["--start", "2026-11-01"]), ("openai", []), ("kto", [])):
        outputs: list[bytes] = []
        for url in (f"file://{root}", "s3://audit/log"):
            out = tmp_path / f"{fmt}-{len(outputs)}.jsonl"
            result = runner.invoke(app, ["export", str(out), "--format", fmt, "--url", url, *flags], env=env)
            assert result.exit_code == 0, result.output
            outputs.append(out.read_bytes())
        assert outputs[0] and outputs[0] == outputs[1], fmt
    local = runner.invoke(app, ["verify", f"file://{root}"], env=env)
    on_s3 = runner.invoke(app, ["verify", "s3://audit/log"], env=env)
    assert local.exit_code == on_s3.exit_code == 1  # repeated ids and offset gaps: the adversarial log's own
    found = [re.findall(r"^  \S.*$", r.output, re.MULTILINE) for r in (local, on_s3)]  # the problems, one a line
    assert found[0] == found[1] and any(line.startswith("  duplicate ids: pairs: ") for line in found[1])


def test_storage_problem_on_s3_names_what_is_wrong(moto: MotoServer) -> None:
    """The sink's readiness check on S3: a listing of its prefix, so a writer scoped to the prefix passes it."""
    options = {"client_kwargs": {"endpoint_url": moto.endpoint}, "key": "testing", "secret": "testing"}
    moto.create_bucket("audit")
    assert Storage("s3://audit/team-a/log", options).problem() is None  # an empty prefix is fine
    assert Storage("s3://missing/log", options).problem() == "s3://missing/log: the bucket does not exist"
    moto.stop()
    problem = Storage("s3://audit/team-a/log", {**options, "config_kwargs": {"retries": {"max_attempts": 1}}}).problem()
    assert problem is not None and problem.startswith("s3://audit/team-a/log: ")
