"""The `crm` command: run the product embedded or one service at a time, migrate, and run workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from pydantic import SecretStr
from rich.progress import TaskID

from services.bench.cli import bench
from services.contacts.importer.command import import_contacts
from shared.consumer import ConsumerRunner
from shared.observability import configure_logging
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import ConfigurationError, PlatformSettings, load_settings

T = TypeVar("T")

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


def _dev_bootstrap_key(data_dir: Path) -> Path:
    """Embedded mode with no CRM_BOOTSTRAP_API_KEY: make one admin key, once, kept in the data folder."""
    import secrets

    from shared.auth.principal import TOKEN_PREFIX

    path = data_dir / "bootstrap-api-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(f"{TOKEN_PREFIX}bootstrap_{secrets.token_urlsafe(32)}\n")
    return path


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
    key_note = ""
    if platform.bootstrap_api_key is None:
        key_file = _dev_bootstrap_key(platform.data_dir)
        platform.bootstrap_api_key = SecretStr(key_file.read_text().strip())
        key_note = f" (from {key_file})"
    application = create_embedded_app(platform)
    base = f"http://{host}:{port}"
    typer.echo(f"CRM embedded: data in {platform.data_dir.resolve()}, bus: {platform.bus}")
    typer.echo(f"  admin key{key_note}: {platform.bootstrap_api_key.get_secret_value()}")
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


def _runners(runtime: ServiceRuntime, consumer: str | None) -> list[ConsumerRunner]:
    runners = runtime.consumer_runners()
    if consumer is None:
        return runners
    chosen = [runner for runner in runners if runner.spec.name == consumer]
    if not chosen:
        names = ", ".join(runner.spec.name for runner in runners) or "none"
        raise typer.BadParameter(f"{runtime.name} has no consumer {consumer!r} (it has: {names})")
    return chosen


ConsumerOpt = Annotated[str | None, typer.Argument(help="One consumer of the service (default: all).")]


@app.command()
def replay(service: ServiceArg, consumer: ConsumerOpt = None) -> None:
    """Rebuild a service's views from the start of their topics (stop its consumers first)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shared.replay import ReplayStuck, replay_consumer

    runtime = ServiceRuntime(_definition(service), platform=_platform())
    runners = _runners(runtime, consumer)
    for refused in [runner for runner in runners if runner.spec.replay_refused is not None]:
        message = f"{refused.spec.name} cannot be replayed: {refused.spec.replay_refused}"
        if consumer is not None:
            typer.echo(f"crm replay: {message}", err=True)
            raise typer.Exit(1)
        typer.echo(f"crm replay: skipping {message}", err=True)
        runners.remove(refused)

    async def run() -> None:
        try:
            async with runtime.opened():
                with Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
                ) as progress:
                    for runner in runners:
                        task = progress.add_task(runner.spec.name, total=None)

                        def show(done: int, total: int, task: TaskID = task) -> None:
                            progress.update(task, completed=done, total=total)

                        total = await replay_consumer(runner, on_progress=show)
                        progress.update(task, completed=total, total=total)
        except ReplayStuck as exc:
            typer.echo(f"crm replay: {exc}", err=True)
            raise typer.Exit(1) from exc

    asyncio.run(run())


def _until_end_reached(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command that reads dead-letter topics to their end, saying so when it cannot."""
    from shared.bus.reading import EndNotReached

    try:
        return asyncio.run(work())
    except EndNotReached as exc:
        typer.echo(f"crm dlq: {exc}", err=True)
        raise typer.Exit(1) from exc


dlq_app = typer.Typer(help="Dead letters: list them, and drive them again once their cause is fixed.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(service: ServiceArg) -> None:
    """Records a consumer gave up on, and outbox events the bus refused."""
    from shared.dlq import list_dead_letters

    runtime = ServiceRuntime(_definition(service), platform=_platform())

    async def run() -> None:
        async with runtime.opened():
            letters = await list_dead_letters(
                runtime.database, runtime.definition.outbox, runtime.consumer_runners()
            )
        if not letters:
            typer.echo(f"{service}: no dead letters")
        for letter in letters:
            state = "pending" if letter.pending else "settled"
            owner = letter.consumer or "outbox"
            typer.echo(
                f"{state:<9} {owner:<24} {letter.where:<28} {letter.event_type:<28} {letter.event_id}  "
                f"key={letter.key}  {letter.failed_at or ''}\n          {letter.error}"
            )

    _until_end_reached(run)


@dlq_app.command("redrive")
def dlq_redrive(
    service: ServiceArg,
    consumer: ConsumerOpt = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            help="Settle this dead letter without applying it (its place, as `crm dlq list` shows it)."
        ),
    ] = None,
) -> None:
    """Apply pending dead letters again, in order, and requeue refused outbox events. Safe to repeat."""
    from shared.dlq import RedriveReport, redrive_consumer, requeue_refused

    runtime = ServiceRuntime(_definition(service), platform=_platform())
    runners = _runners(runtime, consumer)

    async def run() -> RedriveReport:
        report = RedriveReport()
        async with runtime.opened():
            for runner in runners:
                await redrive_consumer(runner, report, skip=frozenset(skip or ()))
                if report.stopped_at is not None:
                    return report
            if consumer is None:
                await requeue_refused(runtime.database, runtime.definition.outbox, report)
        return report

    report = _until_end_reached(run)
    typer.echo(
        f"{service}: {report.applied} applied, {report.skipped} already applied, {report.discarded} skipped, "
        f"{report.requeued} refused outbox events requeued"
    )
    if report.stopped_at is not None:
        letter = report.stopped_at
        typer.echo(f"stopped at {letter.where} ({letter.event_id}): {letter.error}", err=True)
        typer.echo(
            f"fix the cause and run again, or pass --skip {letter.where} to settle it unapplied", err=True
        )
        raise typer.Exit(1)


@app.command()
def asyncapi(
    output: Annotated[
        Path, typer.Option(help="Where the document goes; the event schemas go to events/ beside it.")
    ] = Path("docs/asyncapi.json"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when the files there are not current.")
    ] = False,
) -> None:
    """The event contract: the AsyncAPI 3.0 document and each event version's JSON Schema."""
    from services.asyncapi import files
    from shared.events.asyncapi import drift, write_files

    directory = output.parent
    contract = files(output.name)
    if not check:
        written = write_files(directory, contract)
        typer.echo(f"{directory}: {len(written)} of {len(contract)} event contract files written")
        for path in written:
            typer.echo(f"  {directory / path}")
        return
    default = output == Path("docs/asyncapi.json")
    problem = drift(directory, contract, command="crm asyncapi" + ("" if default else f" --output {output}"))
    if problem is None:
        typer.echo(f"{directory}: the event contract is current ({len(contract)} files)")
        return
    typer.echo(f"crm asyncapi: {problem}", err=True)
    raise typer.Exit(1)


keys_app = typer.Typer(help="API keys: create, list and revoke. Each reaches every service within a second.")
app.add_typer(keys_app, name="keys")
KeysServiceOpt = Annotated[
    str, typer.Option("--service", help="The service whose database takes the write (any will do).")
]


def _expiry(value: str | None) -> datetime | None:
    """`30d`, `12h`, `45m`, or an ISO 8601 time (UTC when it has no offset)."""
    if value is None:
        return None
    if match := re.fullmatch(r"(\d+)([dhm])", value.strip()):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return datetime.now(UTC) + timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("use 30d, 12h, 45m or an ISO 8601 time", param_hint="--expires") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", help="Repeat for each scope, e.g. contacts:write.")],
    name: Annotated[str | None, typer.Option(help="Who or what uses the key.")] = None,
    affiliate: Annotated[str | None, typer.Option(help="Bind the key to this affiliate id.")] = None,
    expires: Annotated[str | None, typer.Option(help="30d, 12h, 45m or an ISO 8601 time.")] = None,
    service: KeysServiceOpt = "contacts",
) -> None:
    """Create a key and print it. It is shown this once; only its hash is kept."""
    from shared.auth.keys import create_key
    from shared.db import session_scope
    from shared.errors import DomainError

    runtime = ServiceRuntime(_definition(service), platform=_platform())
    expires_at = _expiry(expires)

    async def run() -> str:
        async with runtime.opened(), session_scope(runtime.database) as session:
            created = await create_key(
                session,
                runtime.definition.access,
                runtime.definition.event_outbox,
                scopes=scope,
                name=name,
                affiliate_id=affiliate,
                expires_at=expires_at,
            )
        return f"{created.key.key_id}  {created.token}"

    try:
        line = asyncio.run(run())
    except DomainError as exc:
        typer.echo(f"crm keys create: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("key id            key (shown once; store it now)")
    typer.echo(line)


@keys_app.command("list")
def keys_list(service: KeysServiceOpt = "contacts") -> None:
    """Every key this service knows, without secrets."""
    from shared.auth.keys import every_key
    from shared.db import read_scope

    runtime = ServiceRuntime(_definition(service), platform=_platform())

    async def run() -> None:
        async with runtime.opened(), read_scope(runtime.database) as session:
            async for key in every_key(session, runtime.definition.access):
                state = "revoked" if key.revoked_at else "active"
                typer.echo(
                    f"{key.key_id}  {state:<7}  {','.join(key.scopes):<40}  {key.name or ''}"
                    f"{'  affiliate=' + key.affiliate_id if key.affiliate_id else ''}"
                    f"{'  expires=' + key.expires_at.isoformat() if key.expires_at else ''}"
                )

    asyncio.run(run())


@keys_app.command("revoke")
def keys_revoke(key_id: str, service: KeysServiceOpt = "contacts") -> None:
    """Revoke a key; every service refuses it within a second of the announcement."""
    from shared.auth.keys import revoke_key
    from shared.db import session_scope
    from shared.errors import DomainError

    runtime = ServiceRuntime(_definition(service), platform=_platform())

    async def run() -> None:
        async with runtime.opened(), session_scope(runtime.database) as session:
            await revoke_key(session, runtime.definition.access, runtime.definition.event_outbox, key_id)

    try:
        asyncio.run(run())
    except DomainError as exc:
        typer.echo(f"crm keys revoke: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{key_id}: revoked")


contacts_app = typer.Typer(help="Contacts from the command line.")
app.add_typer(contacts_app, name="contacts")
contacts_app.command("import")(import_contacts)


app.command(help="Benchmark report: each scenario against its baseline, measured in the same run.")(bench)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"crm: {exc}", err=True)
        sys.exit(2)
