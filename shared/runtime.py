"""What one running service is made of: its database, the bus, its outbox relay and its consumers.

`ServiceDefinition` is static (tables, routers, consumers); `ServiceRuntime` holds live resources.
In embedded mode all runtimes share one bus; in distributed mode each process has its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData

from shared.aio import sleep_unless_stopped
from shared.auth.keys import access_handlers
from shared.auth.store import KeyStore
from shared.auth.tables import AccessTables
from shared.batching import ApplyBatch, BatchWriter, ItemT, ResultT
from shared.bus.base import EventBus
from shared.bus.factory import create_bus
from shared.consumer import ConsumerRunner, ConsumerSpec, ConsumerTables
from shared.db import Database
from shared.events import topics
from shared.idempotency import IdempotencyStore
from shared.identity import SESSION_KEY, IdentityHasher, identity_key
from shared.migrations import upgrade_to_head
from shared.observability import BUS_UP
from shared.outbox import Outbox, OutboxRelay, OutboxTables
from shared.ratelimit import RateLimiter
from shared.settings import SESSION_KEY as PLATFORM_KEY
from shared.settings import PlatformSettings, ServiceSettings, load_settings

log = logging.getLogger(__name__)

# How long start-up waits for the idempotency clean-up: a database that accepts connections and never
# answers would otherwise hold the start, and so `/healthz` and `/readyz`, for the driver's 60 s connect
# timeout. Housekeeping tries again ten minutes later, without a limit.
_START_PRUNE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BackgroundWorker:
    """A loop a service runs beside its relay and consumers, e.g. a periodic sweep.

    `run(runtime, stop)` works until `stop` is set, then returns. It runs wherever the service's
    consumers run (the web process unless `RUN_CONSUMERS=false`, and `crm consume`), in every replica,
    so what it does must be safe to do twice at once (claim rows with `FOR UPDATE SKIP LOCKED`)."""

    name: str
    run: Callable[[ServiceRuntime, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    description: str
    settings_class: type[ServiceSettings]
    metadata: MetaData
    migrations_dir: Path
    outbox: OutboxTables
    consumer_tables: ConsumerTables
    access: AccessTables
    routers: Sequence[APIRouter] = ()
    consumers: Sequence[ConsumerSpec] = field(default_factory=tuple)
    workers: Sequence[BackgroundWorker] = ()

    def __post_init__(self) -> None:
        # Every service keeps its own copy of the API keys, fed from `crm.access`.
        access_consumer = ConsumerSpec(
            name=f"{self.name}.access",
            topics=[topics.ACCESS],
            handlers=access_handlers(self.access),
            owns=[self.access.api_keys],
        )
        if all(spec.name != access_consumer.name for spec in self.consumers):
            object.__setattr__(self, "consumers", (*self.consumers, access_consumer))

    @property
    def event_outbox(self) -> Outbox:
        return Outbox(self.outbox, source=f"/crm/{self.name}")


class ServiceRuntime:
    def __init__(
        self,
        definition: ServiceDefinition,
        *,
        platform: PlatformSettings | None = None,
        settings: ServiceSettings | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.definition = definition
        self.platform = platform or load_settings(PlatformSettings)
        self.settings = settings or load_settings(definition.settings_class)
        self.database = Database(
            self.settings.resolved_database_url(definition.name, self.platform),
            session_info={
                SESSION_KEY: IdentityHasher(identity_key(self.platform)),
                PLATFORM_KEY: self.platform,
            },
        )
        # A bus handed in (embedded mode) belongs to the caller, who starts and stops it.
        self._owns_bus = bus is None
        self.bus = bus or create_bus(self.platform, client_id=f"crm-{definition.name}")
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Last answer of the bus probe; readiness reads it instead of probing the bus per request.
        self.bus_up = False
        self._batch_writers: dict[object, BatchWriter[Any, Any]] = {}
        bootstrap = self.platform.bootstrap_api_key
        self.keys = KeyStore(
            self.database,
            definition.access,
            bootstrap_key=bootstrap.get_secret_value() if bootstrap else None,
            cache_seconds=self.platform.api_key_cache_seconds,
        )
        self.rate_limiter = RateLimiter(self.platform.rate_limits)
        self.idempotency = IdempotencyStore(
            self.database,
            definition.access.idempotency,
            ttl=timedelta(hours=self.platform.idempotency_ttl_hours),
        )

    @property
    def name(self) -> str:
        return self.definition.name

    def batched(self, apply: ApplyBatch[ItemT, ResultT]) -> BatchWriter[ItemT, ResultT]:
        """This service's group-commit writer for `apply` (one per function, made on first use)."""
        writer = self._batch_writers.get(apply)
        if writer is None:
            writer = self._batch_writers[apply] = BatchWriter(self.database, apply)
        return writer

    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.database, self.definition.outbox, self.bus, service=self.name)

    def consumer_runners(self) -> list[ConsumerRunner]:
        return [
            ConsumerRunner(spec, self.database, self.definition.consumer_tables, self.bus)
            for spec in self.definition.consumers
        ]

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """Migrated and connected, without workers: for one-off commands (`crm replay`, `crm dlq`)."""
        if self.settings.migrate_on_start:
            await self.migrate()
        if self._owns_bus:
            await self.bus.start()
        try:
            yield
        finally:
            if self._owns_bus:
                await self.bus.stop()
            await self.database.dispose()

    async def migrate(self) -> None:
        await upgrade_to_head(self.database, self.definition.migrations_dir, self.definition.metadata)

    async def start(self, *, relay: bool | None = None, consumers: bool | None = None) -> None:
        if self.settings.migrate_on_start:
            await self.migrate()
        if self._owns_bus:
            await self.bus.start()
        # A fresh event per start: an asyncio.Event belongs to the loop it was first used in.
        self._stop = asyncio.Event()
        await self._probe_bus()
        self._spawn(self._watch_bus(self._stop), "bus-probe")
        await self._prune_idempotency(timeout_s=_START_PRUNE_TIMEOUT_S)
        self._spawn(self._housekeeping(self._stop), "housekeeping")
        if self.settings.run_relay if relay is None else relay:
            self._spawn(self.relay().run(self._stop), "relay")
        if self.settings.run_consumers if consumers is None else consumers:
            for runner in self.consumer_runners():
                self._spawn(runner.run(self._stop), runner.spec.name)
            # Background work goes where the consumers run: the web process, or `crm consume`.
            for worker in self.definition.workers:
                self._spawn(worker.run(self, self._stop), worker.name)
        log.info("%s: workers running: %s", self.name, ", ".join(t.get_name() for t in self._tasks) or "none")

    async def _probe_bus(self) -> None:
        self.bus_up = await self.bus.ping()
        BUS_UP.labels(self.name).set(1 if self.bus_up else 0)

    async def _watch_bus(self, stop: asyncio.Event, *, every_s: float = 5.0) -> None:
        """Probe the bus in the background, so `/readyz` and `crm_bus_up` cost nothing per request."""
        while not stop.is_set():
            await sleep_unless_stopped(stop, every_s)
            await self._probe_bus()

    async def _prune_idempotency(self, *, timeout_s: float | None = None) -> None:
        try:
            pruned = await asyncio.wait_for(self.idempotency.prune(), timeout_s)
        except Exception as exc:  # a database outage (or silence) only delays the clean-up
            log.warning("%s: pruning idempotency records failed: %r", self.name, exc)
            return
        if pruned:
            log.info("%s: %d expired idempotency records deleted", self.name, pruned)

    async def _housekeeping(self, stop: asyncio.Event, *, every_s: float = 600.0) -> None:
        """Delete expired idempotency records: at start-up, then every ten minutes."""
        while not stop.is_set():
            await sleep_unless_stopped(stop, every_s)
            if not stop.is_set():
                await self._prune_idempotency()

    def _spawn(self, work: Coroutine[Any, Any, None], label: str) -> None:
        task = asyncio.create_task(work, name=f"{self.name}:{label}")
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        if self._owns_bus:
            await self.bus.stop()
        await self.database.dispose()


def _report_crash(task: asyncio.Task[None]) -> None:
    """Workers loop until stopped; one that ends with an error must not end silently."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("worker %s stopped: %r", task.get_name(), error, exc_info=error)
