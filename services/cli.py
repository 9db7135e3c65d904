"""The `crm` command: run the product embedded or one service at a time, migrate, and run workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from shared.observability import configure_logging
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import ConfigurationError, PlatformSettings, load_settings

app = typer.Typer(help="A headless CRM on an event stream.", no_args_is_help=True, add_completion=False)

ServiceArg = Annotated[str, typer.Argument(help="contacts, journeys, referrals or kpi")]
HostOpt = Annotated[str, typer.Option(help="Interface to listen on.")]


def _definition(service: str) -> ServiceDefinition:
    from services.registry import SERVICES

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    return SERVICES[service]


def _platform() -> PlatformSettings:
    platform = load_settings(PlatformSettings)
    configure_logging(platform.log_level)
    return platform


async def _until_signalled(runtime: ServiceRuntime, *, relay: bool, consumers: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start(relay=relay, consumers=consumers)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


@app.command()
def dev(
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for all four services.")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Overrides CRM_DATA_DIR.")] = None,
) -> None:
    """Embedded mode: all four services in one process on one port, SQLite and the embedded bus."""
    from services.embedded import create_embedded_app

    if data_dir is not None:
        os.environ["CRM_DATA_DIR"] = str(data_dir)
    platform = _platform()
    application = create_embedded_app(platform)
    base = f"http://{host}:{port}"
    typer.echo(f"CRM embedded: data in {platform.data_dir.resolve()}, bus: {platform.bus}")
    for name in ("contacts", "journeys", "referrals", "kpi"):
        typer.echo(f"  {name:<10} {base}/{name}/docs")
    uvicorn.run(application, host=host, port=port, log_level=platform.log_level.lower())


@app.command()
def serve(
    service: ServiceArg,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Overrides CRM_<SERVICE>_PORT.")] = None,
) -> None:
    """Distributed mode: one service in its own process (PostgreSQL + Kafka in production)."""
    from shared.web.app import create_service_app

    definition = _definition(service)
    platform = _platform()
    runtime = ServiceRuntime(definition, platform=platform)
    application = create_service_app(definition, runtime)
    listen = port or runtime.settings.port
    typer.echo(f"CRM {service}: http://{host}:{listen}/docs (bus: {platform.bus})")
    uvicorn.run(application, host=host, port=listen, log_level=platform.log_level.lower())


@app.command()
def migrate(
    services: Annotated[list[str] | None, typer.Argument(help="Services to migrate (default: all).")] = None,
) -> None:
    """Create each service's database if missing and apply its migrations."""
    from services.registry import SERVICES

    platform = _platform()

    async def run() -> None:
        for name in services or list(SERVICES):
            runtime = ServiceRuntime(_definition(name), platform=platform)
            try:
                await runtime.migrate()
                typer.echo(f"{name}: migrated")
            finally:
                await runtime.database.dispose()

    asyncio.run(run())


@app.command()
def relay(service: ServiceArg) -> None:
    """Publish a service's outbox to the bus until stopped (instead of inside the web process)."""
    runtime = ServiceRuntime(_definition(service), platform=_platform())
    asyncio.run(_until_signalled(runtime, relay=True, consumers=False))


@app.command()
def consume(service: ServiceArg) -> None:
    """Run a service's event consumers until stopped (instead of inside the web process)."""
    runtime = ServiceRuntime(_definition(service), platform=_platform())
    asyncio.run(_until_signalled(runtime, relay=False, consumers=True))


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"crm: {exc}", err=True)
        sys.exit(2)
