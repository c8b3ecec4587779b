"""The one settings model of a preflog process.

Read once at start-up from ``PREFLOG_*`` environment variables (nested with
``__``, e.g. ``PREFLOG_KAFKA__BOOTSTRAP_SERVERS``), then overridden by CLI
flags. Credentials are ``SecretStr``: they never appear in logs or reprs.
The sections live in :mod:`preflog.settings.sections`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigError
from .api import ApiSettings
from .sections import (
    CodecSettings,
    KafkaSettings,
    PrivacySettings,
    ProcessorSettings,
    ProducerSettings,
    SinkSettings,
    TopicSettings,
)

__all__ = [
    "ApiSettings",
    "CodecSettings",
    "KafkaSettings",
    "PrivacySettings",
    "ProcessorSettings",
    "ProducerSettings",
    "Settings",
    "SinkSettings",
    "TopicSettings",
    "load_settings",
    "settings_env",
]


class Settings(BaseSettings):
    """Everything one preflog process reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="PREFLOG_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    codec: CodecSettings = Field(default_factory=CodecSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    data_dir: Path = Field(Path(".preflog"), description="where the embedded stack keeps its data and logs")
    memory_limit: str | None = Field(
        None,
        description="memory of the commands that read the whole audit log (dataset build, report, export, verify), "
        "e.g. 512MB, 2GB or 10%; beyond it they spill to disk. Default: an eighth of RAM, at most 1 GiB",
    )

    def groups(self) -> dict[str, list[str]]:
        """preflog's consumer groups and the topics each reads."""
        t = self.topics
        return {
            self.processor.app_id: [t.inference, t.feedback, t.ticks],
            self.sink.group_id: list(t.outputs().values()),
        }

    def audit_url(self) -> str:
        """Where the audit log lives."""
        return self.sink.url or f"file://{(self.data_dir / 'audit').resolve()}"

    def make_codec(self) -> Any:
        """The codec these settings select."""
        from ..schemas.codec import ConfluentCodec, SingleObjectCodec

        if self.codec.framing == "confluent":
            return ConfluentCodec(self.codec.registry_config())
        return SingleObjectCodec()


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as PREFLOG_* environment variables, to start a child process with the same settings."""
    import json

    env: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(f"{prefix}__{name.upper()}" if prefix else name.upper(), getattr(value, name))
        elif isinstance(value, SecretStr):
            env[f"PREFLOG_{prefix}"] = value.get_secret_value()
        elif isinstance(value, (dict, list)):
            env[f"PREFLOG_{prefix}"] = json.dumps(value)
        elif value is not None:
            env[f"PREFLOG_{prefix}"] = str(value)

    walk("", settings)
    return env


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            out[key] = _merge(out.get(key) or {}, value)
        elif value is not None:
            out[key] = value
    return out


def _dev_privacy(env: Settings, overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """``overrides`` with the demo's dev privacy (``preflog up --demo``) when nothing else configures privacy."""
    import os

    from ..privacy.dev import dev_privacy

    if any(k.startswith("PREFLOG_PRIVACY__") for k in os.environ) or (overrides or {}).get("privacy"):
        return overrides
    dev = dev_privacy(Path((overrides or {}).get("data_dir") or env.data_dir))
    if dev is None:
        return overrides
    return {**(overrides or {}), "privacy": dev}


def load_settings(
    overrides: dict[str, Any] | None = None, discover: Callable[[Path], str | None] | None = None
) -> Settings:
    """Settings from the environment, with ``overrides`` (CLI flags; None = not given) on top.

    When neither gives ``kafka.bootstrap_servers``, ``discover(data_dir)`` may supply it (the
    command line passes a lookup of the ``preflog up`` stack running from the data directory).
    When neither configures privacy and ``preflog up --demo`` left its dev keys in the data directory,
    those are used (:mod:`preflog.privacy.dev`).
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        env = Settings()
        given = (overrides or {}).get("kafka") or {}
        if (
            discover is not None
            and "bootstrap_servers" not in env.kafka.model_fields_set
            and not given.get("bootstrap_servers")
        ):
            found = discover(Path((overrides or {}).get("data_dir") or env.data_dir))
            if found:
                overrides = {**(overrides or {}), "kafka": {**given, "bootstrap_servers": found}}
        overrides = _dev_privacy(env, overrides)
        if not overrides:
            return env
        return Settings.model_validate(_merge(env.model_dump(), overrides))
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except SettingsError as exc:
        raise ConfigError(f"invalid settings in the environment: {exc} (lists and maps are JSON)") from None
