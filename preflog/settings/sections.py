"""The sections of the settings model: Kafka, topics, codec, producer, processor, sink and privacy.

Each is a pydantic model nested in :class:`preflog.settings.Settings`, so every
field is an environment variable (``PREFLOG_<SECTION>__<FIELD>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from ..schemas.tables import OUTPUTS, TABLES

__all__ = [
    "CodecSettings",
    "KafkaSettings",
    "PrivacySettings",
    "ProcessorSettings",
    "ProducerSettings",
    "SinkSettings",
    "TopicSettings",
]


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster. ``extra`` takes any librdkafka key."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="more librdkafka settings (not secrets)")

    def client_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) configuration."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        conf.update(self.extra)
        return conf


class TopicSettings(BaseModel):
    """Topic names and how topics are created."""

    inference: str = "preflog.inference.v1"
    feedback: str = "preflog.feedback.v1"
    pairs: str = "preflog.pairs.v1"
    unpaired: str = "preflog.unpaired.v1"
    unmatched: str = "preflog.unmatched.v1"
    dead_letter: str = "preflog.dead-letter.v1"
    turns: str = Field("preflog.turns.v1", description="conversation turns, so a later turn can refer to its history")
    ticks: str = Field("preflog.processor-ticks.v1", description="internal: idle ticks of the processor")
    partitions: int = Field(4, ge=1, description="partitions of topics preflog creates")
    replication_factor: int = Field(1, ge=1)

    def all(self) -> dict[str, str]:
        """Role -> topic name, for every topic preflog uses (internal ones included)."""
        return {
            "inference": self.inference,
            "feedback": self.feedback,
            "pairs": self.pairs,
            "unpaired": self.unpaired,
            "unmatched": self.unmatched,
            "dead_letter": self.dead_letter,
            "turns": self.turns,
            "ticks": self.ticks,
        }

    def outputs(self) -> dict[str, str]:
        """Table -> topic name, for the processor's outputs (the sink's inputs)."""
        return {o.role: getattr(self, o.role) for o in OUTPUTS}


class ProcessorSettings(BaseModel):
    """The join worker (``preflog process``)."""

    app_id: str = Field("preflog-processor", description="Faust app id: the consumer group and table prefix")
    window_s: float = Field(3600.0, gt=0, description="feedback joins an inference up to this long after it")
    grace_s: float = Field(300.0, ge=0, description="extra wait for out-of-order records before expiry")
    late_retention_s: float = Field(86400.0, ge=0, description="how long expired inferences are remembered")
    idle_timeout_s: float = Field(30.0, gt=0, description="idle partitions advance stream time after this")
    tick_interval_s: float = Field(1.0, gt=0)
    score_margin: float = Field(0.0, ge=0, description="SCORES pairs need a larger score difference than this")
    score_mode: Literal["all", "best-vs-worst"] = "all"
    store: str = Field("rocksdb://", description="Faust table store: rocksdb:// (durable) or memory://")
    rocksdb_write_buffer_mb: int = Field(
        8, ge=1, description="RocksDB memtable size per partition database (2 of them at most); Faust's default 64"
    )
    rocksdb_block_cache_mb: int = Field(
        16, ge=1, description="RocksDB read cache per partition database; Faust's default 2048"
    )
    state_dir: Path | None = Field(None, description="table files; default <data_dir>/processor")
    metrics_port: int = Field(9464, ge=0, description="port of /metrics, /healthz and /readyz; 0 disables")
    metrics_host: str = Field(
        "127.0.0.1", description="address the metrics port binds: 127.0.0.1 this machine only, 0.0.0.0 in a container"
    )
    liveness_timeout_s: float = Field(
        5.0, gt=0, description="/healthz fails when the event loop takes longer to answer"
    )
    session_timeout_s: float = Field(10.0, gt=0, description="consumer group session timeout")
    batch_max: int = Field(
        500, ge=1, description="records joined per batch: outputs, then state, then offsets, once per batch"
    )
    batch_wait_s: float = Field(0.01, gt=0, description="how long a batch waits to fill before it is joined")
    fetch_max_wait_ms: int = Field(
        1500,
        ge=1,
        description="longest a fetch waits for data; real Kafka answers as soon as data arrives, the embedded "
        "broker only when the wait is over (the embedded stack uses 100)",
    )
    producer_max_batch_size: int = Field(
        16384, ge=1, description="bytes per produce batch of the worker's outputs and changelog"
    )
    recovery_consistency_check: bool = Field(
        True,
        description="Faust refuses to start when a table's saved offset is past its changelog's high watermark; "
        "keep it on real Kafka. The embedded broker reports high watermarks low (docs: The embedded broker), "
        "so the embedded stack turns it off",
    )
    max_input_bytes: int = Field(
        600_000,
        ge=1024,
        description="an input record value larger than this is dead-lettered (InputTooLarge) and never stored; "
        "with max_state_entry_bytes it bounds the join state and its changelog records (the raw bytes are "
        "stored, so it must fit in max_state_entry_bytes with 4 kB to spare)",
    )
    max_output_bytes: int = Field(
        900_000,
        ge=1024,
        description="an encoded output larger than this becomes a DeadLetter (OutputTooLarge) keeping its input; "
        "keep it under the producer's and broker's message.max.bytes (default 1 MiB)",
    )
    max_event_time_skew_s: float = Field(
        3600.0,
        gt=0,
        description="an event whose event_time is more than this ahead of its Kafka record timestamp (or of the "
        "worker's clock) is dead-lettered (EventTimeSkew) and never moves stream time",
    )
    gap_check_s: float = Field(
        3.0,
        gt=0,
        description="an input partition quiet this long is checked (by fetching) for records past the last one "
        "joined, which are then read directly and joined (see processors/faust_compat.py)",
    )
    max_state_entry_bytes: int = Field(
        950_000,
        ge=4096,
        description="the most one request_id's join-state entry (one changelog record: the records' raw bytes) may "
        "take; feedback that would take a waiting entry over it is dead-lettered (InputTooLarge), and beyond it "
        "feedback ids are no longer remembered (a redelivered judgement then repeats its pair_ids, which the sink "
        "deduplicates). Keep it under the producer's max_request_size (Faust: 1,000,000) and at least "
        "max_input_bytes + 4 kB",
    )

    @model_validator(mode="after")
    def _entry_holds_an_input(self) -> ProcessorSettings:
        if self.max_state_entry_bytes < self.max_input_bytes + 4096:
            raise ValueError(
                f"max_state_entry_bytes={self.max_state_entry_bytes} cannot hold one input of max_input_bytes="
                f"{self.max_input_bytes} and its entry's fields: raise it to at least "
                f"{self.max_input_bytes + 4096} or lower max_input_bytes"
            )
        return self


class SinkSettings(BaseModel):
    """The audit-log writer (``preflog sink``)."""

    url: str | None = Field(None, description="file:///path or s3://bucket/prefix; default <data_dir>/audit")
    group_id: str = "preflog-sink"
    tables: list[str] = Field(default_factory=lambda: list(TABLES), description="which output topics to store")

    @model_validator(mode="after")
    def _known_tables(self) -> SinkSettings:
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ValueError(f"sink.tables: unknown table(s) {unknown}; choose from {', '.join(TABLES)}")
        return self

    partition_by: list[str] = Field(default_factory=list, description="extra partition columns, e.g. model.name")
    max_rows: int = Field(50_000, ge=1, description="a file is cut at this many records")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="... or this many input bytes")
    max_age_s: float = Field(300.0, gt=0, description="... or when its first record is this old")
    idle_flush_s: float = Field(10.0, gt=0, description="... or when its partition is idle this long")
    dedupe_window: int = Field(1_000_000, ge=0, description="recent ids per partition remembered for dedupe")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto, ...)")
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    metrics_port: int = Field(9465, ge=0, description="port of /metrics, /healthz and /readyz; 0 disables")
    metrics_host: str = Field(
        "127.0.0.1", description="address the metrics port binds: 127.0.0.1 this machine only, 0.0.0.0 in a container"
    )
    liveness_timeout_s: float = Field(
        60.0, gt=0, description="/healthz fails when the consume loop has not turned for this long"
    )

    def storage_options(self) -> dict[str, Any]:
        """s3fs options; credentials fall back to the standard AWS chain."""
        options: dict[str, Any] = {}
        if self.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
        if self.aws_access_key_id and self.aws_secret_access_key:
            options["key"] = self.aws_access_key_id
            options["secret"] = self.aws_secret_access_key.get_secret_value()
        return options


class CodecSettings(BaseModel):
    """How records are framed on the wire."""

    framing: Literal["single-object", "confluent"] = "single-object"
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None

    @model_validator(mode="after")
    def _registry_needed(self) -> CodecSettings:
        if self.framing == "confluent" and not self.schema_registry_url:
            raise ValueError("framing=confluent needs schema_registry_url (PREFLOG_CODEC__SCHEMA_REGISTRY_URL)")
        return self

    def registry_config(self) -> dict[str, Any]:
        """confluent-kafka SchemaRegistryClient configuration."""
        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_username and self.schema_registry_password:
            conf["basic.auth.user.info"] = (
                f"{self.schema_registry_username}:{self.schema_registry_password.get_secret_value()}"
            )
        return conf


class ProducerSettings(BaseModel):
    """Producer SDK behaviour."""

    max_block_ms: int = Field(50, ge=0, description="longest a log_* call may block when the local queue is full")
    linger_ms: int = Field(5, ge=0)
    queue_max_messages: int = Field(100_000, ge=1)
    delivery_timeout_ms: int = Field(120_000, ge=1000)


class PrivacySettings(BaseModel):
    """Pseudonyms, sealed personal fields, consent and erasure (docs/privacy.md).

    With ``enabled`` the SDK replaces user, session and annotator ids by keyed pseudonyms and seals
    every personal field (prompt, candidates, rationale, metadata) with its subject's data key before
    anything is encoded; readers open them with the data keys from ``keys_topic``, unwrapped by the
    master key. The processor and the sink need neither secret.
    """

    enabled: bool = Field(False, description="pseudonymise ids and seal personal fields in the SDK")
    pseudonym_secret: SecretStr | None = Field(
        None, description="the HMAC-SHA256 key of pseudonyms (16 bytes or more); a new one makes new pseudonyms"
    )
    pseudonym_secret_file: Path | None = Field(None, description="... or a file holding it")
    master_key: SecretStr | None = Field(None, description="the master key wrapping the data keys: 32 bytes, base64")
    master_key_file: Path | None = Field(None, description="... or a file holding it (base64)")
    previous_master_key_files: list[Path] = Field(
        default_factory=list, description="master keys being rotated out: readers still unwrap with them"
    )
    keys_topic: str = Field("preflog.keys.v1", description="the compacted topic of data keys, keyed by subject")
    keys_dir: Path | None = Field(
        None, description="keep the data keys in this directory instead of keys_topic (the embedded stack's default)"
    )
    unstated_consent: list[str] = Field(
        default_factory=lambda: ["training", "analytics"],
        description="what a record stating no consent allows (records logged before consent existed); [] for nothing",
    )
    redact: list[str] = Field(
        default_factory=list, description="SDK redactors applied before sealing: email, phone, card, iban, ip, or all"
    )

    @model_validator(mode="after")
    def _known(self) -> PrivacySettings:
        from ..privacy.fields import parse_consent

        parse_consent(self.unstated_consent, "privacy.unstated_consent")
        kinds = {"email", "phone", "card", "iban", "ip", "all"}
        unknown = sorted(set(self.redact) - kinds)
        if unknown:
            raise ValueError(f"privacy.redact: unknown redactor(s) {unknown}; choose from {', '.join(sorted(kinds))}")
        return self
