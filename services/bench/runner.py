"""Runs the chosen scenarios in each mode and gathers their figures into a report."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape
from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.bench.deployment import Deployment, DistributedDeployment, EmbeddedDeployment
from services.bench.load.wrk import require_wrk
from services.bench.machine import git_commit, machine
from services.bench.memory import RssSampler
from services.bench.model import Figure, ModeReport
from services.bench.progress import Steps
from services.bench.report import Report
from services.bench.scenarios.base import BenchSettings, ModeContext, Scenario
from shared.bus.factory import create_bus
from shared.settings import PlatformSettings

PREFLIGHT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap: str | None
    postgres_url: str | None
    kafka_replication_factor: int = 1


async def _preflight(kafka_bootstrap: str, postgres_url: str, data_dir: Path) -> None:
    """Fail fast, with a clear message, when the broker or the database server cannot be reached."""
    bus = create_bus(
        PlatformSettings(bus="kafka", kafka_bootstrap_servers=kafka_bootstrap, data_dir=data_dir)
    )
    try:
        reachable = await bus.ping()
    finally:
        await bus.stop()
    if not reachable:
        raise ConnectionError(f"Kafka at {kafka_bootstrap} is unreachable")
    url = make_url(postgres_url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with asyncio.timeout(PREFLIGHT_TIMEOUT_S), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise ConnectionError(f"PostgreSQL at {url.render_as_string()} is unreachable: {exc}") from exc
    finally:
        await engine.dispose()


async def _run_mode(
    deployment: Deployment, settings: BenchSettings, scenarios: list[Scenario], steps: Steps
) -> ModeReport:
    figures: list[Figure] = []
    with RssSampler() as memory:
        context = ModeContext(deployment, settings, steps, memory)
        try:
            for scenario in scenarios:
                steps.say(f"[bold]{deployment.mode}: {scenario.title}[/bold]")
                try:
                    figures += await scenario.run(context)
                except Exception as exc:
                    # One scenario failing must not cost the figures of the others.
                    steps.say(f"[red]{scenario.name} failed: {escape(f'{type(exc).__name__}: {exc}')}[/red]")
                    figures.append(
                        Figure(scenario.name, "(not measured)", "", None, note=f"{type(exc).__name__}: {exc}")
                    )
        finally:
            try:
                await deployment.close()
            except Exception as exc:
                steps.say(f"[yellow]{deployment.mode}: clean-up failed: {escape(repr(exc))}[/yellow]")
    return ModeReport(deployment.mode, figures)


async def run_bench(
    *,
    modes: list[str],
    infrastructure: Infrastructure,
    settings: BenchSettings,
    scenarios: list[Scenario],
    work_dir: Path,
    log_dir: Path,
    steps: Steps,
) -> Report:
    """Run `scenarios` in each of `modes`. Data goes under `work_dir`, server logs to `log_dir`."""
    # A SIGTERM (say, from a wrapper script's trap) unwinds like Ctrl-C, so every server gets stopped.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    require_wrk()
    started = datetime.now(UTC)
    reports: list[ModeReport] = []
    for mode in modes:
        mode_dir = work_dir / mode
        if mode == "embedded":
            reports.append(await _run_mode(EmbeddedDeployment(mode_dir, log_dir), settings, scenarios, steps))
            continue
        kafka, postgres = infrastructure.kafka_bootstrap, infrastructure.postgres_url
        if not (kafka and postgres):
            reason = "No Kafka broker and PostgreSQL server given (--kafka and --postgres)."
            steps.say(f"[yellow]distributed: skipped. {reason}[/yellow]")
            reports.append(ModeReport(mode, skipped=reason))
            continue
        try:
            with steps.step("distributed: reach Kafka and PostgreSQL"):
                await _preflight(kafka, postgres, work_dir)
        except ConnectionError as exc:
            reports.append(ModeReport(mode, [Figure("preflight", "(not measured)", "", None, note=str(exc))]))
            continue
        deployment = DistributedDeployment(
            mode_dir,
            log_dir,
            kafka_bootstrap=kafka,
            kafka_replication_factor=infrastructure.kafka_replication_factor,
            postgres_url=postgres,
        )
        reports.append(await _run_mode(deployment, settings, scenarios, steps))
    return Report(
        started_at=started,
        finished_at=datetime.now(UTC),
        commit=git_commit(),
        machine=machine(),
        settings=settings,
        scenarios=scenarios,
        modes=reports,
    )
