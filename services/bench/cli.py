"""`crm bench`: measure the product against baselines taken in the same run and write a report."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from services.bench import report as reports
from services.bench.progress import Steps
from services.bench.runner import Infrastructure, run_bench
from services.bench.scenarios import SCENARIOS, contact_search
from services.bench.scenarios.base import BenchSettings


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in value.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter("expected contact counts separated by commas, e.g. 10000,1000000") from None
    if not sizes or sizes[0] < 100:
        raise typer.BadParameter("give at least one size, each at least 100")
    return sizes


class Mode(StrEnum):
    embedded = "embedded"
    distributed = "distributed"
    both = "both"


def bench(
    mode: Annotated[Mode, typer.Option(help="Which mode to measure.")] = Mode.both,
    kafka: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers for distributed mode (host:port).")
    ] = None,
    kafka_replication_factor: Annotated[
        int, typer.Option(min=1, help="Replication factor of topics created on --kafka (1: one broker).")
    ] = 1,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL for distributed mode; fresh bench_* databases are made and dropped."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.json and server logs.")] = Path(
        "var/bench"
    ),
    duration: Annotated[float, typer.Option(min=1, help="Seconds of each measured load phase.")] = 15.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of wrk load before each measured run.")] = 2.0,
    events: Annotated[
        int, typer.Option(min=100, help="Events for the consumer and relay scenarios.")
    ] = 10_000,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 32,
    search_sizes: Annotated[
        str,
        typer.Option(
            help="Contact counts the contact_search scenario seeds and searches (comma-separated); the "
            "largest is compared with the smallest."
        ),
    ] = ",".join(map(str, contact_search.DEFAULT_SIZES)),
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"Run only this scenario (repeatable): {', '.join(s.name for s in SCENARIOS)}."),
    ] = None,
) -> None:
    """Benchmark each scenario against a baseline measured in the same run; write report.md and .json."""
    known = {s.name: s for s in SCENARIOS}
    if unknown := [name for name in scenario or [] if name not in known]:
        raise typer.BadParameter(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(known)}")
    search = contact_search.scenario(_sizes(search_sizes))
    chosen = [search if s.name == search.name else s for s in SCENARIOS if not scenario or s.name in scenario]
    settings = BenchSettings(duration_s=duration, warmup_s=warmup, events=events, connections=connections)
    modes = ["embedded", "distributed"] if mode is Mode.both else [mode.value]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_dir = out / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    try:
        with tempfile.TemporaryDirectory(prefix="crm-bench-") as work_dir, Steps() as steps:
            report = asyncio.run(
                run_bench(
                    modes=modes,
                    infrastructure=Infrastructure(kafka, postgres, kafka_replication_factor),
                    settings=settings,
                    scenarios=chosen,
                    work_dir=Path(work_dir),
                    log_dir=log_dir,
                    steps=steps,
                )
            )
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C or SIGTERM: the servers were stopped while the run unwound; no report.
        typer.echo("bench: interrupted, no report written", err=True)
        raise typer.Exit(130) from None
    markdown, data = reports.write(report, out)
    typer.echo("\n" + reports.summary(report) + "\n")
    typer.echo(f"report: {markdown} and {data}; server logs in {out / 'logs'}")
    if report.errors:
        raise typer.Exit(1)


app = typer.Typer(add_completion=False)
app.command()(bench)
