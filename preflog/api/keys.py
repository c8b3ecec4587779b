"""API keys of the ingestion API (a building block of issue 21): tenants, scopes, hashed at rest, revocable.

A key is ``pfk_<id>_<secret>``: the id (8 bytes, hex) finds its record, the secret (32 random bytes,
url-safe base64) proves it. Only the secret's SHA-256 is stored: a key is random, so a fast hash is as
good as a slow one and a stolen key file gives no key. A key is shown once, when it is made.

Each key is bound to one tenant (stamped on every event it sends, never taken from a request body) and
to scopes: ``inference`` (send inference events) and ``feedback`` (send feedback events). A *public* key
is for browsers: feedback only, and only from the origins it lists (CORS); it is write-only by design,
as every key is (the API has nothing to read).

The key file (``<data dir>/api/keys.json`` by default) is rewritten whole under a temporary name and
renamed, mode 0600; a revoked key stays in it, marked, so its id is never reused and a request with it
is refused as revoked, not as unknown.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preflog.errors import ConfigError

__all__ = ["PREFIX", "SCOPES", "ApiKey", "KeyFile", "KeyRefused", "parse"]

PREFIX = "pfk_"
SCOPES = ("inference", "feedback")
_SHAPE = re.compile(r"^pfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyRefused(Exception):
    """A request's key is not accepted; ``reason`` is what the API answers (never the key itself)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status  # 401: not a key we know (or revoked); 403: a key that may not do this


@dataclass(frozen=True)
class ApiKey:
    """One key's record (no secret: its hash)."""

    id: str
    tenant: str
    scopes: tuple[str, ...]
    secret_sha256: str
    created_ms: int
    name: str = ""
    public: bool = False
    origins: tuple[str, ...] = ()
    revoked_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    def allows(self, scope: str, origin: str | None = None) -> bool:
        """Whether the key may send events of ``scope`` (from browser ``origin``, for a public key)."""
        if scope not in self.scopes or (self.public and scope != "feedback"):  # a public key sends feedback only
            return False
        return not self.public or (origin is not None and origin in self.origins)


def parse(key: str) -> tuple[str, str]:
    """The (id, secret) of a key; KeyRefused when it does not have a key's shape (the text is not echoed)."""
    found = _SHAPE.match(key.strip()) if isinstance(key, str) else None
    if found is None:
        raise KeyRefused("not a preflog API key (pfk_<id>_<secret>)")
    return found.group(1), found.group(2)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass
class KeyFile:
    """The keys of one deployment, in a JSON file."""

    path: Path
    keys: dict[str, ApiKey] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        """The key file at ``path`` (empty when it does not exist yet).

        Raises:
            ConfigError: the file is not a key file (it names the path and what is wrong).
        """
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text())
            keys = {
                k["id"]: ApiKey(**{**k, "scopes": tuple(k["scopes"]), "origins": tuple(k.get("origins", ()))})
                for k in raw["keys"]
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a preflog API key file ({type(exc).__name__}: {exc})") from None
        return cls(path, keys)

    def save(self) -> None:
        """Write the file whole (temporary name, then rename), mode 0600."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "keys": [asdict(k) for k in sorted(self.keys.values(), key=lambda k: k.created_ms)]}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(body, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the file's lock and read it again: two writers (keys revoke, keys create, up) lose nothing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.keys = KeyFile.load(self.path).keys
            yield

    def create(
        self,
        tenant: str,
        scopes: tuple[str, ...] | list[str],
        name: str = "",
        public: bool = False,
        origins: tuple[str, ...] | list[str] = (),
    ) -> tuple[str, ApiKey]:
        """A new key (the text, shown once) and its record, saved.

        Raises:
            ValueError: a tenant, scope or origin that cannot be (the message names which and why).
        """
        if not _TENANT.match(tenant or ""):
            raise ValueError(f"tenant {tenant!r}: 1-64 letters, digits, '.', '_' or '-', first a letter or digit")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ValueError(f"scopes {sorted(set(scopes))}: choose from {', '.join(SCOPES)}")
        if public:
            if set(scopes) != {"feedback"}:
                raise ValueError("a public (browser) key may only send feedback: give --scope feedback")
            if not origins:
                raise ValueError("a public (browser) key needs the origins it may send from, e.g. https://app.example.com")
            bad = [o for o in origins if not re.match(r"^https?://[^/\s]+$", o)]
            if bad:
                raise ValueError(f"origins {bad}: an origin is scheme://host[:port], without a path")
        with self._changing():
            key_id = secrets.token_hex(8)
            while key_id in self.keys:
                key_id = secrets.token_hex(8)
            secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
            record = ApiKey(
                id=key_id, tenant=tenant, scopes=tuple(s for s in SCOPES if s in scopes),
                secret_sha256=_digest(secret), created_ms=int(time.time() * 1000), name=name, public=public,
                origins=tuple(origins),
            )  # fmt: skip
            self.keys[key_id] = record
            self.save()
        return f"{PREFIX}{key_id}_{secret}", record

    def revoke(self, key_id: str) -> ApiKey:
        """Mark key ``key_id`` revoked, saved (revoking twice keeps the first time).

        Raises:
            KeyError: no such key.
        """
        with self._changing():
            record = self.keys.get(key_id)
            if record is None:
                raise KeyError(f"no API key {key_id!r} in {self.path} (preflog keys list shows them)")
            if not record.revoked:
                self.keys[key_id] = ApiKey(**{**asdict(record), "revoked_ms": int(time.time() * 1000)})
                self.save()
            return self.keys[key_id]

    def check(self, key: str, scope: str, origin: str | None = None) -> ApiKey:
        """The record of ``key`` when it may send events of ``scope`` (from ``origin``); else KeyRefused."""
        key_id, secret = parse(key)
        record = self.keys.get(key_id)
        # the hash is compared even for an unknown id, so that timing does not tell ids apart
        expected = record.secret_sha256 if record is not None else "0" * 64
        if not hmac.compare_digest(expected, _digest(secret)) or record is None:
            raise KeyRefused("unknown API key")
        if record.revoked:
            raise KeyRefused(f"API key {key_id} was revoked")
        if not record.allows(scope, origin):
            if scope not in record.scopes:
                raise KeyRefused(f"API key {key_id} may not send {scope} events", 403)
            if origin is None:
                raise KeyRefused(f"API key {key_id} is a browser key: it sends only from its origins", 403)
            raise KeyRefused(f"API key {key_id} is a browser key of other origins, not {origin}", 403)
        return record
