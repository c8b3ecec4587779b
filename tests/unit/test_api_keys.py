"""API keys (issue 21's first part): tenants, scopes, browser keys, hashed at rest, revocable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflog.api.keys import KeyFile, KeyRefused, parse
from preflog.cli import app


def test_a_key_is_checked_for_its_tenant_s_scopes_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    keys = KeyFile.load(tmp_path / "keys.json")
    text, record = keys.create("acme", ["inference", "feedback"], name="chat-api")
    assert text.startswith("pfk_") and parse(text)[0] == record.id
    stored = (tmp_path / "keys.json").read_text()
    assert parse(text)[1] not in stored and text not in stored  # the secret is not at rest
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    again = KeyFile.load(tmp_path / "keys.json")  # another process reads the same keys
    assert again.check(text, "inference").tenant == "acme"
    assert again.check(text, "feedback").tenant == "acme"

    other, _ = keys.create("globex", ["feedback"])
    with pytest.raises(KeyRefused, match="may not send inference"):
        keys.check(other, "inference")
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")  # right id, wrong secret
    with pytest.raises(KeyRefused, match="unknown API key"):
        keys.check(forged, "feedback")
    with pytest.raises(KeyRefused, match="not a preflog API key"):
        keys.check("Bearer something", "feedback")


def test_a_revoked_key_is_refused_as_revoked_and_its_id_is_never_reused(tmp_path: Path) -> None:
    keys = KeyFile.load(tmp_path / "keys.json")
    text, record = keys.create("acme", ["feedback"])
    first = keys.revoke(record.id).revoked_ms
    assert keys.revoke(record.id).revoked_ms == first  # revoking twice keeps the first time
    with pytest.raises(KeyRefused, match="revoked"):
        KeyFile.load(tmp_path / "keys.json").check(text, "feedback")
    assert record.id in json.loads((tmp_path / "keys.json").read_text())["keys"][0]["id"]
    with pytest.raises(KeyError, match="no API key"):
        keys.revoke("0" * 16)


def test_a_browser_key_sends_feedback_only_from_its_origins(tmp_path: Path) -> None:
    keys = KeyFile.load(tmp_path / "keys.json")
    text, _ = keys.create("acme", ["feedback"], public=True, origins=["https://chat.acme.com"])
    assert keys.check(text, "feedback", origin="https://chat.acme.com").public
    with pytest.raises(KeyRefused, match="other origins"):
        keys.check(text, "feedback", origin="https://evil.example")
    with pytest.raises(KeyRefused, match="sends only from its origins"):
        keys.check(text, "feedback")  # no origin: not a browser
    with pytest.raises(ValueError, match="only send feedback"):
        keys.create("acme", ["inference", "feedback"], public=True, origins=["https://chat.acme.com"])
    with pytest.raises(ValueError, match="needs the origins"):
        keys.create("acme", ["feedback"], public=True)
    with pytest.raises(ValueError, match="without a path"):
        keys.create("acme", ["feedback"], public=True, origins=["https://chat.acme.com/page"])
    with pytest.raises(ValueError, match="tenant"):
        keys.create("", ["feedback"])
    with pytest.raises(ValueError, match="choose from"):
        keys.create("acme", ["read"])


def test_the_commands_create_list_and_revoke_without_ever_printing_a_stored_key(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path / "data"), "keys"]
    made = CliRunner().invoke(app, [*base, "create", "--tenant", "acme", "--scope", "feedback", "--name", "web"])
    assert made.exit_code == 0, made.output
    text = made.output.split()[0]
    key_id = parse(text)[0]
    listed = CliRunner().invoke(app, [*base, "list"])
    assert key_id in listed.output and "acme" in listed.output and parse(text)[1] not in listed.output
    revoked = CliRunner().invoke(app, [*base, "revoke", key_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    with pytest.raises(KeyRefused, match="revoked"):
        KeyFile.load(tmp_path / "data" / "api" / "keys.json").check(text, "feedback")
    bad = CliRunner().invoke(app, [*base, "create", "--tenant", "acme", "--scope", "feedback", "--public"])
    assert bad.exit_code != 0 and "origins" in bad.output


def test_rate_limits_admit_whole_requests_and_say_when_to_retry() -> None:
    from preflog.api.limits import RateLimits

    now = [100.0]
    limits = RateLimits(rate=10, burst=20, clock=lambda: now[0])
    assert limits.admit("a", 15).admitted
    refused = limits.admit("a", 10)  # 5 left: all or nothing
    assert not refused.admitted and refused.retry_after_s == 1  # 5 more tokens take 0.5 s: a whole second
    assert limits.admit("b", 20).admitted  # buckets are per key
    now[0] += 0.5
    assert limits.admit("a", 10).admitted  # refilled at 10/s
    now[0] += 60
    assert limits.admit("a", 20).admitted and not limits.admit("a", 1).admitted  # never beyond the burst
    too_big = limits.admit("a", 21)
    assert not too_big.admitted and too_big.never
    with pytest.raises(ValueError, match="positive"):
        RateLimits(rate=0, burst=1)


def test_two_writers_of_the_key_file_lose_nothing(tmp_path: Path) -> None:
    """A revocation through one handle is not undone by a key made through a handle loaded before it."""
    path = tmp_path / "keys.json"
    text, record = KeyFile.load(path).create("acme", ["feedback"])
    stale = KeyFile.load(path)  # e.g. preflog up's, loaded earlier
    KeyFile.load(path).revoke(record.id)
    stale.create("acme", ["inference"])
    after = KeyFile.load(path)
    assert after.keys[record.id].revoked and len(after.keys) == 2
    with pytest.raises(KeyRefused, match="revoked"):
        after.check(text, "feedback")
