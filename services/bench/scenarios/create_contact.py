"""Throughput of `POST /v1/contacts` against a bare FastAPI endpoint, both loaded by the same wrk."""

from __future__ import annotations

import sys
import uuid

from services.bench.load.wrk import WrkResult, run_wrk
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.servers import ServerProcess, child_environment, free_port

NAME = "create_contact"
MAX_RPS_FACT = "create_contact.max_rps"
TARGET = Target("ratio_at_least", 0.35)


def _listen(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]


def bare_endpoint(ctx: ModeContext, scenario: str) -> tuple[ServerProcess, str]:
    """The bare FastAPI app (`services.bench.baseline_app`) in a uvicorn process of its own; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Same uvicorn settings as `crm dev` / `crm serve`: defaults, log level INFO (access log on).
    server = ServerProcess(
        "bare FastAPI",
        [sys.executable, "-m", "uvicorn", "services.bench.baseline_app:app", *_listen(port)],
        env=child_environment({}),
        log_path=ctx.deployment.log_dir / f"{ctx.mode}-{scenario}-bare-fastapi.log",
        health_url=f"{base}/healthz",
    )
    return server, base


async def _load(ctx: ModeContext, url: str, who: str) -> WrkResult:
    settings = ctx.settings
    prefix = uuid.uuid4().hex[:12]
    if settings.warmup_s > 0:
        with ctx.steps.step(f"{NAME}: warm-up {who} ({settings.warmup_s:g}s)"):
            await run_wrk(
                url,
                duration_s=settings.warmup_s,
                connections=settings.connections,
                email_prefix=f"{prefix}-warmup",
            )
    with ctx.steps.step(f"{NAME}: wrk on {who} ({settings.duration_s:g}s, {settings.connections} conns)"):
        return await run_wrk(
            url, duration_s=settings.duration_s, connections=settings.connections, email_prefix=prefix
        )


def wrk_details(result: WrkResult) -> dict[str, float | int | str]:
    return {
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "max_ms": round(result.max_ms, 2),
    }


async def run(ctx: ModeContext) -> list[Figure]:
    bare_server, bare_base = bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        baseline = await _load(ctx, f"{bare_base}/v1/contacts", "bare FastAPI")

    product = await ctx.deployment.product(NAME)
    async with ctx.serving(NAME, product.servers):
        subject = await _load(ctx, f"{product.contacts_url}/v1/contacts", "POST /v1/contacts")

    ctx.facts[MAX_RPS_FACT] = subject.ok_per_s
    notes = []
    if subject.non_2xx or subject.socket_errors:
        notes.append(f"{subject.non_2xx} non-2xx responses, {subject.socket_errors} socket errors")
    details = {f"subject_{k}": v for k, v in wrk_details(subject).items()}
    details.update({f"baseline_{k}": v for k, v in wrk_details(baseline).items()})
    return [
        Figure(
            NAME,
            "throughput",
            "req/s",
            subject.ok_per_s,
            baseline.ok_per_s,
            TARGET,
            details=details,
            note="; ".join(notes),
        ),
        Figure(NAME, "p50 latency (wrk)", "ms", subject.p50_ms, baseline.p50_ms),
        Figure(NAME, "p99 latency (wrk)", "ms", subject.p99_ms, baseline.p99_ms),
    ]


SCENARIO = Scenario(
    name=NAME,
    title="create_contact throughput",
    measures=(
        "`POST /v1/contacts` with unique emails under wrk (1 thread, 32 connections) vs a bare FastAPI "
        "endpoint validating the same body in its own uvicorn process; target ratio ≥ 0.35."
    ),
    run=run,
)
