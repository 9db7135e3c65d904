"""Settings: one `BaseSettings` per service, each with its own env prefix.

Platform-wide values (bus kind, Kafka address, data folder) live under `CRM_`; a service's own values
(database URL, which workers run in-process) under `CRM_<SERVICE>_`. A wrong or missing value stops
start-up with a message naming the environment variable to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.iso_codes import CurrencyCode

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

BusKind = Literal["embedded", "kafka"]

_SUPPORTED_DATABASE_SCHEMES = ("postgresql+asyncpg://", "sqlite+aiosqlite://")


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the environment variable."""


UNAUTHENTICATED = "unauthenticated"


class RateLimit(BaseModel):
    """A token bucket: `per_second` tokens flow in, up to `burst` are kept; a request takes one."""

    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


# `unauthenticated` is the bucket of one client address for keys that fail: each costs a lookup.
DEFAULT_RATE_LIMITS = {
    "default": RateLimit(per_second=100, burst=200),
    UNAUTHENTICATED: RateLimit(per_second=5, burst=20),
}


class PlatformSettings(BaseSettings):
    """Values every service shares: where events travel and where embedded data lives."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    bus: BusKind = Field("embedded", description="`embedded` (a durable local log) or `kafka`.")
    kafka_bootstrap_servers: str | None = Field(
        None, description="Comma-separated host:port list; required when CRM_BUS=kafka."
    )
    kafka_partitions: int = Field(3, ge=1, description="Partitions for topics the services create.")
    kafka_replication_factor: int = Field(
        3, ge=1, description="Replication factor for created topics; 1 for a single-broker setup."
    )
    kafka_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description=(
            "min.insync.replicas for created topics, so that acks=all means that many copies; "
            "defaults to 2, or 1 when the replication factor is 1."
        ),
    )
    data_dir: Path = Field(Path("var"), description="Folder for SQLite files and the embedded event log.")
    log_level: str = Field("INFO", description="Python logging level.")

    bootstrap_api_key: SecretStr | None = Field(
        None, description="An admin API key every service accepts, for the first key and for operators."
    )
    identity_hash_key: SecretStr | None = Field(
        None,
        description="Key of the HMAC that events carry instead of an email (`shared.identity`); the same for "
        "every service of a deployment. Unset: a random key kept in `data_dir` (embedded mode).",
    )
    api_key_cache_seconds: float = Field(
        0.25, ge=0, le=1, description="How long a service reuses the answer for one key before asking again."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1, description="Largest request body any route takes (413 beyond); routes may set less."
    )
    rate_limits: dict[str, RateLimit] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description=(
            'Token bucket per API key and scope, as JSON: {"default": {"per_second": 100, "burst": 200}, '
            '"referrals:postback": {...}}. A scope not listed uses "default"; "unauthenticated" limits '
            "the failed keys one client address may present (5/s, burst 20)."
        ),
    )
    idempotency_ttl_hours: float = Field(
        24, gt=0, description="How long an Idempotency-Key is remembered after its request."
    )
    reporting_currency: CurrencyCode = Field(
        "EUR",
        description="ISO 4217 currency the contact counters sum revenue in (`revenue_minor`); revenue in "
        "other currencies is summed per currency beside it, never converted.",
    )

    @model_validator(mode="after")
    def _kafka_needs_servers(self) -> PlatformSettings:
        if self.bus == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError("kafka_bootstrap_servers is required when bus is 'kafka'")
        return self

    @model_validator(mode="after")
    def _min_isr_fits_replication(self) -> PlatformSettings:
        if self.kafka_min_insync_replicas is None:
            self.kafka_min_insync_replicas = min(2, self.kafka_replication_factor)
        elif self.kafka_min_insync_replicas > self.kafka_replication_factor:
            # Every acks=all write would fail with NotEnoughReplicas, for ever.
            raise ValueError("kafka_min_insync_replicas must not exceed kafka_replication_factor")
        return self

    @field_validator("rate_limits")
    @classmethod
    def _has_default_limit(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        return {**DEFAULT_RATE_LIMITS, **value}

    @property
    def embedded_log_path(self) -> Path:
        return self.data_dir / "events.sqlite"


# Where a service's sessions find the platform settings (`Database(session_info=…)`), so a consumer or a
# write path reads a deployment-wide value (the reporting currency) without it threaded through.
SESSION_KEY = "crm_platform_settings"


def platform_of(session: AsyncSession) -> PlatformSettings:
    platform = session.info.get(SESSION_KEY)
    if not isinstance(platform, PlatformSettings):
        raise RuntimeError("this session's database was opened without the platform settings")
    return platform


class ServiceSettings(BaseSettings):
    """Base for a service's settings; each service subclasses it with `env_prefix="CRM_<NAME>_"`."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy async URL (postgresql+asyncpg://… or sqlite+aiosqlite:///…); "
            "defaults to a SQLite file under CRM_DATA_DIR."
        ),
    )
    run_relay: bool = Field(True, description="Publish this service's outbox from inside the web process.")
    run_consumers: bool = Field(True, description="Run this service's event consumers in the web process.")
    migrate_on_start: bool = Field(
        True, description="Apply migrations at start-up (replicas take turns under a PostgreSQL lock)."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port for `crm serve <service>`.")

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://")):
            # Accept the URL every PostgreSQL tool prints; the async driver is an implementation detail.
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(_SUPPORTED_DATABASE_SCHEMES):
            raise ValueError("must start with postgresql:// , postgresql+asyncpg:// or sqlite+aiosqlite:///")
        return value

    def resolved_database_url(self, service: str, platform: PlatformSettings) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(platform.data_dir / f'{service}.sqlite').resolve()}"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build settings from the environment, turning validation errors into one readable message."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            if not field:
                field = next(
                    (
                        name
                        for name in ("kafka_bootstrap_servers", "kafka_min_insync_replicas")
                        if name in message
                    ),
                    "",
                )
            variable = f"{prefix}{field.upper()}" if field else prefix.rstrip("_")
            problems.append(f"{variable}: {message}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc
