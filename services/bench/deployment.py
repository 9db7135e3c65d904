"""Where a mode runs the product: SQLite files and the embedded bus, or PostgreSQL and Kafka.

Every scenario gets fresh state: a new data folder, new databases, a bus on which nothing is ahead of
its consumer groups. Distributed mode drops the databases it created when it closes.
"""

from __future__ import annotations

import abc
import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.bench.kafka_positions import commit_at_end
from services.bench.servers import ServerProcess, child_environment, crm_command, free_port
from services.registry import SERVICES
from shared.bus.base import EventBus
from shared.bus.factory import create_bus
from shared.settings import PlatformSettings


@dataclass(frozen=True)
class Product:
    """The product's HTTP servers as one scenario starts them, and where to look at their data."""

    servers: list[ServerProcess]
    contacts_url: str
    journeys_url: str
    journeys_database_url: str
    platform: PlatformSettings
    """The servers' bus settings, for reading what they published."""
    referrals_url: str
    referrals_database_url: str

    def servers_for(self, service: str) -> list[ServerProcess]:
        """What to start for `service` alone: `crm dev` serves every service, `crm serve X` only X."""
        return [server for server in self.servers if server.label in ("crm dev", f"crm serve {service}")]


class Deployment(abc.ABC):
    mode: str
    kafka_bootstrap: str | None = None

    def __init__(self, work_dir: Path, log_dir: Path) -> None:
        self.work_dir = work_dir
        self.log_dir = log_dir
        self._counter = itertools.count(1)

    def fresh_dir(self, label: str) -> Path:
        path = self.work_dir / f"{next(self._counter):02d}-{label}"
        path.mkdir(parents=True)
        return path

    @abc.abstractmethod
    def platform(self, data_dir: Path) -> PlatformSettings: ...

    def fresh_bus(self, label: str) -> EventBus:
        return create_bus(self.platform(self.fresh_dir(label)), client_id="crm-bench")

    @abc.abstractmethod
    async def fresh_database_url(self, service: str, label: str) -> str: ...

    @abc.abstractmethod
    async def start_at_end(self, group: str, topics: list[str]) -> None:
        """Make `group` see only records published from now on."""

    @abc.abstractmethod
    async def product(self, label: str) -> Product:
        """The servers to start (not started yet), with fresh data."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Remove what this deployment created outside its work folder."""


class EmbeddedDeployment(Deployment):
    mode = "embedded"

    def platform(self, data_dir: Path) -> PlatformSettings:
        return PlatformSettings(bus="embedded", data_dir=data_dir)

    async def fresh_database_url(self, service: str, label: str) -> str:
        return f"sqlite+aiosqlite:///{self.fresh_dir(label) / f'{service}.sqlite'}"

    async def start_at_end(self, group: str, topics: list[str]) -> None:
        """Nothing to skip: every embedded bus here is a new file."""

    async def close(self) -> None:
        """Nothing to remove: all data lives in the work folder."""

    async def product(self, label: str) -> Product:
        data_dir = self.fresh_dir(label)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = ServerProcess(
            "crm dev",
            [crm_command(), "dev", "--port", str(port), "--data-dir", str(data_dir)],
            env=child_environment({"CRM_BUS": "embedded", "CRM_LOG_LEVEL": "INFO"}),
            log_path=self.log_dir / f"{self.mode}-{label}-crm-dev.log",
            health_url=f"{base}/healthz",
        )
        return Product(
            servers=[server],
            contacts_url=f"{base}/contacts",
            journeys_url=f"{base}/journeys",
            journeys_database_url=f"sqlite+aiosqlite:///{data_dir / 'journeys.sqlite'}",
            platform=self.platform(data_dir),
            referrals_url=f"{base}/referrals",
            referrals_database_url=f"sqlite+aiosqlite:///{data_dir / 'referrals.sqlite'}",
        )


class DistributedDeployment(Deployment):
    mode = "distributed"

    def __init__(
        self,
        work_dir: Path,
        log_dir: Path,
        *,
        kafka_bootstrap: str,
        kafka_replication_factor: int,
        postgres_url: str,
    ) -> None:
        super().__init__(work_dir, log_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.kafka_replication_factor = kafka_replication_factor
        self.postgres_url = make_url(postgres_url).set(drivername="postgresql+asyncpg")
        self._databases: list[str] = []

    def platform(self, data_dir: Path) -> PlatformSettings:
        return PlatformSettings(
            bus="kafka",
            kafka_bootstrap_servers=self.kafka_bootstrap,
            kafka_replication_factor=self.kafka_replication_factor,
            data_dir=data_dir,
        )

    async def fresh_database_url(self, service: str, label: str) -> str:
        # The service creates the database when it migrates; the name is new, so it starts empty.
        name = f"bench_{service}_{uuid.uuid4().hex[:8]}"
        self._databases.append(name)
        return self.postgres_url.set(database=name).render_as_string(hide_password=False)

    async def start_at_end(self, group: str, topics: list[str]) -> None:
        assert self.kafka_bootstrap is not None
        await commit_at_end(self.kafka_bootstrap, group, topics)

    async def product(self, label: str) -> Product:
        # The journeys consumer groups outlive a run; skip what earlier runs left on every topic they
        # read (the benchmark writes contacts, and touchpoints through journeys' own outbox).
        for spec in SERVICES["journeys"].consumers:
            await self.start_at_end(spec.name, spec.topic_names)
        journeys_database = await self.fresh_database_url("journeys", label)
        referrals_database = await self.fresh_database_url("referrals", label)
        data_dir = self.fresh_dir(label)
        env = child_environment(
            {
                "CRM_BUS": "kafka",
                "CRM_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap or "",
                "CRM_KAFKA_REPLICATION_FACTOR": str(self.kafka_replication_factor),
                "CRM_DATA_DIR": str(data_dir),
                "CRM_LOG_LEVEL": "INFO",
                "CRM_CONTACTS_DATABASE_URL": await self.fresh_database_url("contacts", label),
                "CRM_JOURNEYS_DATABASE_URL": journeys_database,
                "CRM_REFERRALS_DATABASE_URL": referrals_database,
            }
        )
        urls: dict[str, str] = {}
        servers: list[ServerProcess] = []
        for service in ("contacts", "journeys", "referrals"):
            port = free_port()
            urls[service] = f"http://127.0.0.1:{port}"
            servers.append(
                ServerProcess(
                    f"crm serve {service}",
                    [crm_command(), "serve", service, "--port", str(port)],
                    env=env,
                    log_path=self.log_dir / f"{self.mode}-{label}-{service}.log",
                    health_url=f"{urls[service]}/healthz",
                )
            )
        return Product(
            servers=servers,
            contacts_url=urls["contacts"],
            journeys_url=urls["journeys"],
            journeys_database_url=journeys_database,
            platform=self.platform(data_dir),
            referrals_url=urls["referrals"],
            referrals_database_url=referrals_database,
        )

    async def close(self) -> None:
        if not self._databases:
            return
        admin = create_async_engine(
            self.postgres_url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
        )
        try:
            async with admin.connect() as connection:
                for name in self._databases:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()
        self._databases.clear()
